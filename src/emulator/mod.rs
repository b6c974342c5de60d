//! The Salesforce-compatible server: REST, SOQL, sObject Collections, Composite, Bulk API 2.0, OAuth and limits, in memory.
pub mod soql;
