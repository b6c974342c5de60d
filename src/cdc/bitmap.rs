//! The `changedFields` / `nulledFields` / `diffFields` bitmaps of a Pub/Sub change event,
//! decoded to REST field names.
//!
//! Each list's first element `0x…` is a hex number whose bit *i* (least significant = 0)
//! stands for the event schema's top-level field at position *i* (position 0 is
//! `ChangeEventHeader`): `0x410000` → positions 16 and 22. Further elements
//! `"{pos}-0x{bits}"` describe the components of the compound field (address, name,
//! geolocation) at top-level position `pos`, bits indexing that nested record's fields:
//! `"4-0x10"` → component 4 of field 4. Components are reported by their REST names
//! (`BillingCity`, not `BillingAddress.City`), as every inbound source reports fields; a
//! compound field set without a nested element stands for all of its components. A bit
//! beyond the schema is an error, never a guess: dropping a changed field would lose data.

use super::schema::TopField;

/// The most hex digits one bitmap may have (4 bits each; real schemas have a few hundred
/// fields). Longer input is refused rather than allocated.
const MAX_HEX_DIGITS: usize = 4096;

/// A bitmap that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitmapError {
    #[error("bitmap element {0:?} is not a hex bitmap")]
    NotHex(String),
    #[error("bitmap element {element:?} sets bit {bit}, but the schema has {fields} fields there")]
    OutOfRange {
        element: String,
        bit: usize,
        fields: usize,
    },
    #[error(
        "bitmap element {element:?} names field position {pos}, which is not a compound field"
    )]
    NotCompound { element: String, pos: usize },
}

/// Decodes one header list (`changedFields`, …) against the schema's fields.
pub fn field_names(entries: &[String], fields: &[TopField]) -> Result<Vec<String>, BitmapError> {
    let mut names = Vec::new();
    let nested: Vec<(usize, Vec<usize>, &str)> = entries
        .iter()
        .filter_map(|e| e.split_once('-').map(|(p, bits)| (e, p, bits)))
        .map(|(e, p, bits)| {
            let pos = p.parse().map_err(|_| BitmapError::NotHex(e.clone()))?;
            Ok((pos, set_bits(bits, e)?, e.as_str()))
        })
        .collect::<Result<_, BitmapError>>()?;
    for entry in entries.iter().filter(|e| !e.contains('-')) {
        if is_hex(entry) {
            for bit in set_bits(entry, entry)? {
                top_level(entry, bit, fields, &nested, &mut names)?;
            }
        } else {
            names.push(plain_name(entry, fields));
        }
    }
    for (pos, bits, element) in &nested {
        let parent = fields
            .get(*pos)
            .filter(|f| f.is_compound())
            .ok_or_else(|| BitmapError::NotCompound {
                element: element.to_string(),
                pos: *pos,
            })?;
        for &bit in bits {
            let c = parent
                .components
                .get(bit)
                .ok_or_else(|| BitmapError::OutOfRange {
                    element: element.to_string(),
                    bit,
                    fields: parent.components.len(),
                })?;
            names.push(c.rest_name.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(names)
}

/// Adds the names that top-level bit `bit` stands for.
fn top_level(
    element: &str,
    bit: usize,
    fields: &[TopField],
    nested: &[(usize, Vec<usize>, &str)],
    names: &mut Vec<String>,
) -> Result<(), BitmapError> {
    let field = fields.get(bit).ok_or_else(|| BitmapError::OutOfRange {
        element: element.to_string(),
        bit,
        fields: fields.len(),
    })?;
    if field.is_header() {
        return Ok(());
    }
    if !field.is_compound() {
        names.push(field.name.clone());
    } else if !nested.iter().any(|(pos, _, _)| *pos == bit) {
        names.extend(field.components.iter().map(|c| c.rest_name.clone()));
    }
    Ok(())
}

/// A name sent as text (`Fax`, or `BillingAddress.City` as CometD writes it), in REST form.
fn plain_name(entry: &str, fields: &[TopField]) -> String {
    if let Some((parent, component)) = entry.split_once('.') {
        let found = fields
            .iter()
            .filter(|f| f.name == parent)
            .flat_map(|f| f.components.iter())
            .find(|c| c.name == component);
        if let Some(c) = found {
            return c.rest_name.clone();
        }
    }
    entry.to_string()
}

fn is_hex(s: &str) -> bool {
    s.starts_with("0x") || s.starts_with("0X")
}

/// The set bit positions of `0x…` (least significant = 0), ascending. Any number of hex
/// digits, odd counts included.
pub fn set_bits(hex: &str, element: &str) -> Result<Vec<usize>, BitmapError> {
    let not_hex = || BitmapError::NotHex(element.to_string());
    let digits = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .ok_or_else(not_hex)?;
    if digits.is_empty() || digits.len() > MAX_HEX_DIGITS {
        return Err(not_hex());
    }
    let mut bits = Vec::new();
    for (k, c) in digits.chars().rev().enumerate() {
        let d = c.to_digit(16).ok_or_else(not_hex)?;
        bits.extend((0..4).filter(|b| d >> b & 1 == 1).map(|b| 4 * k + b));
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::super::schema::{Component, FieldKind, TopField};
    use super::*;

    fn field(name: &str) -> TopField {
        TopField {
            name: name.into(),
            kind: FieldKind::Plain,
            components: Vec::new(),
        }
    }

    /// Header, then fields `F1…F30`, with an address at position 4 and a name at 7.
    fn fields() -> Vec<TopField> {
        let mut v: Vec<TopField> = (0..31).map(|i| field(&format!("F{i}"))).collect();
        v[0] = TopField {
            name: "ChangeEventHeader".into(),
            kind: FieldKind::Header,
            components: Vec::new(),
        };
        let comp = |name: &str, rest: &str| Component {
            name: name.into(),
            rest_name: rest.into(),
            kind: FieldKind::Plain,
        };
        v[4] = TopField {
            name: "BillingAddress".into(),
            kind: FieldKind::Compound,
            components: ["Street", "City", "State", "PostalCode", "Country"]
                .iter()
                .map(|c| comp(c, &format!("Billing{c}")))
                .collect(),
        };
        v[7] = TopField {
            name: "Name".into(),
            kind: FieldKind::Compound,
            components: ["Salutation", "FirstName", "LastName"]
                .iter()
                .map(|c| comp(c, c))
                .collect(),
        };
        v
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_documented_account_example_sets_positions_16_and_22() {
        assert_eq!(set_bits("0x410000", "e").unwrap(), vec![16, 22]);
        let names = field_names(&strings(&["0x410000"]), &fields()).unwrap();
        assert_eq!(names, vec!["F16", "F22"]);
    }

    #[test]
    fn nested_compound_elements_name_components() {
        // "4-0x10": bit 4 of the compound at position 4.
        assert_eq!(set_bits("0x10", "e").unwrap(), vec![4]);
        let names = field_names(&strings(&["0x10", "4-0x10"]), &fields()).unwrap();
        assert_eq!(names, vec!["BillingCountry"]);
        let names = field_names(&strings(&["0x2", "4-0x03", "7-0x06"]), &fields()).unwrap();
        assert_eq!(
            names,
            vec![
                "F1",
                "BillingStreet",
                "BillingCity",
                "FirstName",
                "LastName"
            ]
        );
    }

    #[test]
    fn the_documented_mixed_example_decodes() {
        // The docs' example `['0x650004E0','4-0x10','7-0x06']`: positions 5, 6, 7 (the
        // compound at 7 is detailed by its nested element), 10, 24, 26, 29, 30.
        let names = field_names(&strings(&["0x650004E0", "4-0x10", "7-0x06"]), &fields()).unwrap();
        assert_eq!(
            names,
            vec![
                "F5",
                "F6",
                "F10",
                "F24",
                "F26",
                "F29",
                "F30",
                "BillingCountry",
                "FirstName",
                "LastName"
            ]
        );
    }

    #[test]
    fn a_compound_without_nested_element_stands_for_all_components() {
        let names = field_names(&strings(&["0x80"]), &fields()).unwrap();
        assert_eq!(names, vec!["Salutation", "FirstName", "LastName"]);
    }

    #[test]
    fn odd_digit_counts_and_upper_case() {
        assert_eq!(set_bits("0x1", "e").unwrap(), vec![0]);
        assert_eq!(set_bits("0X101", "e").unwrap(), vec![0, 8]);
        assert_eq!(set_bits("0xF", "e").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(set_bits("0x0", "e").unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn bad_bitmaps_are_errors_not_panics() {
        let f = fields();
        for bad in [
            &["0x"][..],
            &["0xZZ"],
            &["0x1000000000"],
            &["x-0x1"],
            &["5-0x1"],
            &["4-0x100"],
            &["4-zz"],
        ] {
            assert!(field_names(&strings(bad), &f).is_err(), "{bad:?}");
        }
        let huge = format!("0x{}", "f".repeat(MAX_HEX_DIGITS + 1));
        assert!(set_bits(&huge, "e").is_err());
    }

    #[test]
    fn names_sent_as_text_pass_through_in_rest_form() {
        let names = field_names(&strings(&["Fax", "BillingAddress.City"]), &fields()).unwrap();
        assert_eq!(names, vec!["Fax", "BillingCity"]);
        assert!(field_names(&[], &fields()).unwrap().is_empty());
    }
}
