//! Writing Salesforce Ids back into the source rows that ask for it (`write_back` in a
//! mapping), once their upsert landed.

use std::collections::HashMap;

use super::destination::{Destination, SinkError};
use super::flusher::{FlushChange, Flusher};

impl<D: Destination> Flusher<D> {
    /// Write Salesforce Ids back into the source rows that ask for it, where the row's
    /// column does not hold that Id already.
    pub(super) async fn write_back<C: FlushChange>(
        &self,
        by_key: &HashMap<&str, &C>,
        ids: &[(String, String)],
    ) -> Result<(), SinkError> {
        for (key, id) in ids {
            let Some(target) = by_key.get(key.as_str()).and_then(|c| c.write_back()) else {
                continue;
            };
            if target.current.as_deref() != Some(id.as_str()) {
                self.state
                    .write_back(&target.table, &target.column, &target.key, id)
                    .await?;
            }
        }
        Ok(())
    }
}
