//! Mapping row changes to Salesforce records.

mod changes;
mod convert;
