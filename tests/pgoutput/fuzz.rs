//! Property tests ("fuzzing" that runs in CI): the decoder, the value parser and the
//! assembler must never panic on hostile input — arbitrary bytes, and real captured
//! messages with bit flips, truncation, inserted garbage and forged huge counts — and
//! must answer with typed errors instead. Case counts are modest so CI stays fast;
//! raise them with `PROPTEST_CASES=100000 cargo test --test main pgoutput::fuzz::`.

use std::sync::OnceLock;

use crate::support::pgoutput::{load_fixture, scenarios, FIXTURE_MAJORS};
use pgforce::lsn::Lsn;
use pgforce::pgoutput::value::{array_element_oid, oid};
use pgforce::pgoutput::{
    decode, parse_text, Assembler, AssemblerConfig, DecodeContext, TypeRegistry,
};
use proptest::prelude::*;

type Capture = Vec<(Lsn, Vec<u8>)>;

/// `PROPTEST_CASES` when set, else the modest CI default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every stored capture, loaded once.
fn captures() -> &'static Vec<Capture> {
    static C: OnceLock<Vec<Capture>> = OnceLock::new();
    C.get_or_init(|| {
        FIXTURE_MAJORS
            .iter()
            .flat_map(|&m| {
                scenarios()
                    .into_iter()
                    .map(move |s| load_fixture(m, s.name))
            })
            .collect()
    })
}

/// Every stored message with whether it sits inside a streamed block.
fn messages() -> &'static Vec<(bool, Vec<u8>)> {
    static M: OnceLock<Vec<(bool, Vec<u8>)>> = OnceLock::new();
    M.get_or_init(|| {
        let mut out = Vec::new();
        for cap in captures() {
            let mut ctx = DecodeContext::default();
            for (_, b) in cap {
                let m = decode(b, &ctx).expect("fixtures decode");
                out.push((ctx.in_stream, b.clone()));
                ctx.observe(&m);
            }
        }
        out
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    /// Overwrite 2 or 4 bytes with a forged large count / length.
    HugeCount(usize, bool),
    SetByte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, g)| Mutation::Insert(i, g)),
        (any::<usize>(), any::<bool>()).prop_map(|(i, wide)| Mutation::HugeCount(i, wide)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
    ]
}

fn apply(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if b.is_empty() {
        return b;
    }
    let at = |i: usize, n: usize| i % n;
    match m {
        Mutation::FlipBit(i, bit) => {
            let i = at(*i, b.len());
            b[i] ^= 1 << bit;
        }
        Mutation::Truncate(i) => b.truncate(at(*i, b.len())),
        Mutation::Insert(i, g) => {
            let i = at(*i, b.len() + 1);
            b.splice(i..i, g.iter().copied());
        }
        Mutation::HugeCount(i, wide) => {
            let n = if *wide { 4 } else { 2 };
            if b.len() >= n {
                let i = at(*i, b.len() - n + 1);
                b[i..i + n].fill(0xff);
                if *wide {
                    b[i] = 0x7f;
                }
            }
        }
        Mutation::SetByte(i, v) => {
            let i = at(*i, b.len());
            b[i] = *v;
        }
    }
    b
}

/// Push everything, draining as we go; stop at the first error. Never panics.
fn run_assembler(cap: &[(Lsn, Vec<u8>)], asm: &mut Assembler) -> usize {
    let mut events = 0;
    for (lsn, b) in cap {
        if asm.push(*lsn, b).is_err() {
            return events;
        }
        loop {
            match asm.next_event() {
                Ok(Some(_)) => events += 1,
                Ok(None) => break,
                Err(_) => return events,
            }
        }
    }
    events
}

const TYPES: &[u32] = &[
    oid::BOOL,
    oid::INT2,
    oid::INT4,
    oid::INT8,
    oid::NUMERIC,
    oid::FLOAT4,
    oid::FLOAT8,
    oid::TEXT,
    oid::UUID,
    oid::DATE,
    oid::TIME,
    oid::TIMETZ,
    oid::TIMESTAMP,
    oid::TIMESTAMPTZ,
    oid::INTERVAL,
    oid::JSON,
    oid::JSONB,
    oid::BYTEA,
    oid::INT4_ARRAY,
    oid::TEXT_ARRAY,
    oid::DATE_ARRAY,
    oid::TIMESTAMPTZ_ARRAY,
    oid::NUMERIC_ARRAY,
    oid::BYTEA_ARRAY,
    oid::JSONB_ARRAY,
    99999,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        tag in prop::sample::select(b"BCORYIUDTMSEcAbPKrp".to_vec()),
        tagged in any::<bool>(),
        in_stream in any::<bool>(),
    ) {
        let mut b = bytes;
        if tagged {
            b.insert(0, tag);
        }
        let _ = decode(&b, &DecodeContext { in_stream });
    }

    #[test]
    fn decode_returns_typed_errors_on_mutated_real_messages(
        pick in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..4),
        flip_ctx in any::<bool>(),
    ) {
        let all = messages();
        let (in_stream, orig) = &all[pick.index(all.len())];
        let mut b = orig.clone();
        for m in &muts {
            b = apply(&b, m);
        }
        let ctx = DecodeContext { in_stream: *in_stream ^ flip_ctx };
        if let Err(e) = decode(&b, &ctx) {
            // Errors render (Display never panics either).
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn value_parsers_never_panic(
        text in "\\PC{0,40}",
        structured in prop_oneof![
            Just(String::new()),
            "[-+]?[0-9]{1,25}(\\.[0-9]{0,10})?",
            "[0-9]{1,7}-[0-9]{1,2}-[0-9]{1,2}( [0-9]{1,2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?)?([+-][0-9]{2}(:[0-9]{2}){0,2})?( BC)?",
            "(-?[0-9]{1,12} (years?|mons?|days?) ){0,3}[+-]?[0-9]{1,12}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,7})?",
            "(\\[[0-9-]{1,3}:[0-9-]{1,3}\\]=)?\\{[{},\"\\\\a-z0-9 NUL]{0,30}\\}",
            "\\\\x[0-9a-fA-F]{0,9}",
        ],
        ty in prop::sample::select(TYPES.to_vec()),
    ) {
        let mut reg = TypeRegistry::new();
        reg.register_enum(99999, Some(99998));
        for s in [&text, &structured] {
            let _ = parse_text(ty, s);
            let _ = reg.parse_text(ty, s);
            if let Some(elem) = array_element_oid(ty) {
                let _ = parse_text(elem, s);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    #[test]
    fn assembler_never_panics_on_mutated_captures(
        pick in any::<prop::sample::Index>(),
        targets in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
        drop_one in proptest::option::of(any::<prop::sample::Index>()),
        tiny_memory in any::<bool>(),
    ) {
        let caps = captures();
        let mut cap = caps[pick.index(caps.len())].clone();
        for (i, m) in &targets {
            let i = i.index(cap.len());
            cap[i].1 = apply(&cap[i].1, m);
        }
        if let Some(i) = drop_one {
            cap.remove(i.index(cap.len()));
        }
        let mut asm = Assembler::new(AssemblerConfig {
            memory_limit: if tiny_memory { 512 } else { 1 << 20 },
            ..Default::default()
        });
        run_assembler(&cap, &mut asm);
    }

    #[test]
    fn assembler_never_panics_on_shuffled_real_messages(
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..200),
    ) {
        // Real messages in a nonsensical order: protocol errors, never panics.
        let all = messages();
        let cap: Vec<(Lsn, Vec<u8>)> = picks
            .iter()
            .enumerate()
            .map(|(n, i)| (Lsn(n as u64), all[i.index(all.len())].1.clone()))
            .collect();
        run_assembler(&cap, &mut Assembler::default());
    }
}

#[test]
fn forged_huge_counts_are_rejected_before_allocating() {
    use pgforce::pgoutput::DecodeError;
    // Relation with 65535 columns and nothing behind the count.
    let mut rel = vec![b'R'];
    rel.extend_from_slice(&1u32.to_be_bytes());
    rel.extend_from_slice(b"public\0t\0d");
    rel.extend_from_slice(&u16::MAX.to_be_bytes());
    rel.extend_from_slice(b"abc");
    assert!(matches!(
        decode(&rel, &DecodeContext::default()),
        Err(DecodeError::CountExceedsData { count: 65535, .. })
    ));
    // Truncate naming 2^31 relations.
    let mut tr = vec![b'T'];
    tr.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    tr.push(0);
    assert!(matches!(
        decode(&tr, &DecodeContext::default()),
        Err(DecodeError::CountExceedsData { .. })
    ));
    // Message content claiming 2 GB.
    let mut m = vec![b'M', 0];
    m.extend_from_slice(&1u64.to_be_bytes());
    m.extend_from_slice(b"p\0");
    m.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert!(matches!(
        decode(&m, &DecodeContext::default()),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn every_truncation_of_every_real_message_is_an_error_not_a_panic() {
    for (in_stream, b) in messages().iter().step_by(7) {
        let ctx = DecodeContext {
            in_stream: *in_stream,
        };
        // (A v4 Stream Abort cut after its xids is a valid v2 one.)
        if b[0] == b'A' {
            continue;
        }
        for n in 0..b.len().min(300) {
            assert!(
                decode(&b[..n], &ctx).is_err(),
                "a strict prefix must not decode"
            );
        }
    }
}
