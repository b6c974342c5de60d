//! The configuration: loading and parsing TOML, and validation against a real catalog.

mod load;
mod validate;
mod validate_all;
