//! The describe snapshot of the built-in objects: one line per object (its describe without
//! `fields`) and one per field (its describe and how the store derives it), each a SHA-256
//! digest, in describe order. The test fails when the built-in schema's describe output
//! changes; a failing line names the object or field. After an intended change, regenerate
//! with `PGFORCE_UPDATE_DESCRIBE_SNAPSHOT=1 cargo test -p pgforce-emulator describe_snapshot`
//! and review the diff.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::{ObjectDef, Schema};

/// The committed snapshot.
const SNAPSHOT: &str = include_str!("describe.snapshot");

/// The first 16 bytes of the SHA-256 of `text`, as hex.
fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..16]
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The snapshot lines of one object.
fn object_lines(o: &ObjectDef, out: &mut String) {
    let mut describe = o.describe("60.0");
    if let Some(m) = describe.as_object_mut() {
        m.remove("fields");
    }
    let _ = writeln!(out, "{} {}", o.name, digest(&describe.to_string()));
    for f in &o.fields {
        let text = format!("{}|{:?}", f.describe(), f.derived);
        let _ = writeln!(out, "{}.{} {}", o.name, f.name, digest(&text));
    }
}

/// The snapshot of `schema`.
fn render(schema: &Schema) -> String {
    let mut out = String::new();
    for o in schema.objects() {
        object_lines(o, &mut out);
    }
    out
}

#[test]
fn describe_snapshot_of_builtin_objects_is_unchanged() {
    let now = render(&Schema::standard());
    if std::env::var_os("PGFORCE_UPDATE_DESCRIBE_SNAPSHOT").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/schema/describe.snapshot");
        std::fs::write(path, &now).expect("write the snapshot");
        return;
    }
    let changed: Vec<String> = now
        .lines()
        .zip(SNAPSHOT.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("now {a}, was {b}"))
        .take(10)
        .collect();
    assert!(changed.is_empty(), "describe changed: {changed:#?}");
    assert_eq!(
        now.lines().count(),
        SNAPSHOT.lines().count(),
        "fields added or removed"
    );
}
