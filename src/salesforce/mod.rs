//! The Salesforce client: OAuth, REST, sObject Collections, Bulk API 2.0, limits governor and retries.
