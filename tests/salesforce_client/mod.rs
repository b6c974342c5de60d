//! The Salesforce client against an in-test stub: auth and HTTP core, Bulk API 2.0, REST
//! and Collections.

mod bulk;
mod http_core;
mod rest;
