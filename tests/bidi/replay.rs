//! `pgforce replay` over a pipeline whose mapping matches records by an ordinary field
//! (`match_by`, here the seed pair users ⇄ Contact matched by email) is refused with a
//! usage error naming the mapping, before anything is read or sent: its journaled
//! changes are keyed by an email, not an External ID, so replaying them as upserts would
//! fail or create Contacts.

use pgforce::config::Config;
use pgforce::lsn::Lsn;
use pgforce::replay::{self, ReplayError, ReplayRequest};
use pgforce_emulator::config as emu;

use crate::support::bidi::template_text;
use crate::support::config::Secrets;

#[tokio::test]
async fn replay_of_a_match_by_mapping_is_refused_naming_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let text = template_text("http://127.0.0.1:9", "users-contacts-bidi.toml", |t| {
        format!("[journal]\ndir = \"{}\"\n\n{t}", journal.display())
    });
    let path = dir.path().join("pgforce.toml");
    std::fs::write(&path, &text).unwrap();
    let db = "postgres://nobody@127.0.0.1:9/none";

    // The library: refused whether the mapping is named or not.
    let secrets = Secrets::new(&[
        ("DATABASE_URL", db),
        ("SF_CLIENT_SECRET", emu::DEMO_CLIENT_SECRET),
    ]);
    let config = Config::from_toml_with(&text, &secrets).expect("the template loads");
    for mapping in [None, Some("users".to_string())] {
        let req = ReplayRequest {
            from: Lsn(1),
            to: None,
            mapping,
        };
        let err = replay::plan(&config.pipelines[0], &config.journal, &req).unwrap_err();
        let ReplayError::MatchBy { mapping, field, .. } = &err else {
            panic!("expected MatchBy, got {err}");
        };
        assert_eq!((mapping.as_str(), field.as_str()), ("users", "Email"));
        assert!(err.is_usage());
    }

    // The CLI: exit code 2, the mapping named.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgforce"))
        .args(["replay", "--config"])
        .arg(&path)
        .args(["--from-lsn", "0/1"])
        .env("DATABASE_URL", db)
        .env("SF_CLIENT_SECRET", emu::DEMO_CLIENT_SECRET)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\"users\"") && stderr.contains("match_by"),
        "{stderr}"
    );
}
