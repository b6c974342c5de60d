//! Row change → Salesforce record: column→field mapping, transforms and type conversions.

pub mod order;
