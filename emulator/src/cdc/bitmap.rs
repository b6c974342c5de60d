//! The bitmap encoding of `changedFields`, `nulledFields` and `diffFields` in Pub/Sub change
//! events: element 0 is `0x` + the hex of a bit set over top-level schema positions (bit i,
//! LSB first, = schema field i; position 0 is `ChangeEventHeader`); each further element
//! `"{pos}-0x{hex}"` is the bit set over the nested fields of the compound field at top-level
//! position `pos`. Hex digits are upper case, whole bytes, most significant byte first, so
//! `bitstring`'s reverse-the-bits reading (Salesforce's `ChangeEventHeaderUtility.py`) and
//! the Java sample's reverse-the-bytes reading both decode them.

use std::collections::{BTreeMap, BTreeSet};

/// A set of changed (or nulled, or diffed) fields under construction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldBits {
    top: BTreeSet<usize>,
    nested: BTreeMap<usize, BTreeSet<usize>>,
}

impl FieldBits {
    /// Marks top-level position `pos`.
    pub fn set(&mut self, pos: usize) {
        self.top.insert(pos);
    }

    /// Marks nested field `child` of the compound field at `parent`.
    pub fn set_nested(&mut self, parent: usize, child: usize) {
        self.nested.entry(parent).or_default().insert(child);
    }

    /// Whether nothing is marked.
    pub fn is_empty(&self) -> bool {
        self.top.is_empty() && self.nested.is_empty()
    }

    /// The string array Salesforce sends (empty when nothing is marked).
    pub fn encode(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.top.is_empty() {
            out.push(format!("0x{}", hex(&self.top)));
        }
        for (parent, bits) in &self.nested {
            if !bits.is_empty() {
                out.push(format!("{parent}-0x{}", hex(bits)));
            }
        }
        out
    }
}

/// Whole bytes, most significant first, upper-case hex.
fn hex(bits: &BTreeSet<usize>) -> String {
    let Some(max) = bits.iter().next_back() else {
        return "00".to_string();
    };
    let n = max / 8 + 1;
    let mut bytes = vec![0u8; n];
    for b in bits {
        if let Some(byte) = bytes.get_mut(n - 1 - b / 8) {
            *byte |= 1 << (b % 8);
        }
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_salesforce_examples() {
        let mut f = FieldBits::default();
        f.set(16);
        f.set(22);
        assert_eq!(f.encode(), vec!["0x410000"]);
        f.set_nested(4, 4);
        assert_eq!(f.encode(), vec!["0x410000", "4-0x10"]);
        let mut g = FieldBits::default();
        for b in [5, 6, 7, 10, 24, 26, 29, 30] {
            g.set(b);
        }
        assert_eq!(g.encode(), vec!["0x650004E0"]);
        assert!(FieldBits::default().encode().is_empty());
        let mut h = FieldBits::default();
        h.set_nested(7, 1);
        h.set_nested(7, 2);
        assert_eq!(h.encode(), vec!["7-0x06"]);
    }
}
