//! The request context of a data API call, put in request extensions by the server's
//! middleware and read by the routes: the API version of the path and the authenticated
//! caller with the request's write transaction. Routes depend on this, not on the server.

use std::sync::Arc;

use super::session::Session;
use super::txn::{Txn, Writer};

/// Oldest and newest REST API versions served.
pub const MIN_VERSION: u32 = 20;
/// Newest REST API version served (Spring '26).
pub const MAX_VERSION: u32 = 66;

/// The API version of a data request (`v60.0` → `60`), put in request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub u32);

impl ApiVersion {
    /// Parses the `vNN.N` path segment of a supported version.
    pub fn parse(segment: &str) -> Option<ApiVersion> {
        let n = segment
            .strip_prefix('v')?
            .strip_suffix(".0")?
            .parse::<u32>()
            .ok()?;
        (MIN_VERSION..=MAX_VERSION)
            .contains(&n)
            .then_some(ApiVersion(n))
    }

    /// `"60.0"`.
    pub fn number(&self) -> String {
        format!("{}.0", self.0)
    }

    /// `/services/data/v60.0`.
    pub fn base(&self) -> String {
        format!("/services/data/v{}.0", self.0)
    }
}

/// The authenticated caller of a data request, put in request extensions.
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// The session the bearer token stands for.
    pub session: Session,
    /// The request's write transaction (committed when the response is ready; Composite
    /// subrequests share their parent's).
    pub txn: Arc<Txn>,
}

impl AuthContext {
    /// The writer store writes of this request go through.
    pub fn writer(&self) -> Writer {
        self.txn.writer()
    }

    /// `changeOrigin` of this request's API (`rest`) for another API's transactions
    /// (`bulkapi`): the same version and `client=` value.
    pub fn origin_for(&self, api: &str) -> String {
        let o = &self.txn.info().origin;
        match o
            .split_once("/api/")
            .and_then(|(_, rest)| rest.split_once('/'))
        {
            Some((_, tail)) => format!("com/salesforce/api/{api}/{tail}"),
            None => o.clone(),
        }
    }
}
