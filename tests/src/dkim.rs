//! An independent DKIM verifier for the signing tests: dkimpy (Python, from PyPI) run by
//! `tests/dkim/verify.py`, which shares no code with lettre's signer, with the public
//! key served from a file instead of DNS. Also the test keys of `tests/dkim/`.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
};

use serde_json::Value;

/// The dkimpy release the verifier is tested with (also in scripts/test).
pub const DKIMPY_VERSION: &str = "1.1.8";

/// Makes sure `python3` can import dkimpy, installing the pinned release if it cannot.
pub fn ensure_dkimpy() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if importable() {
            return;
        }
        crate::pip_install(&format!("dkimpy=={DKIMPY_VERSION}"));
        assert!(importable(), "dkimpy was installed but python3 cannot import it");
    });
}

fn importable() -> bool {
    Command::new("python3")
        .args(["-c", "import dkim"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A file of `tests/dkim/` (the test keys and their DNS records; README.md there).
pub fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dkim").join(name)
}

/// The text of a file of `tests/dkim/`, trimmed.
pub fn key_text(name: &str) -> String {
    std::fs::read_to_string(key_file(name))
        .unwrap_or_else(|e| panic!("read tests/dkim/{name}: {e}"))
        .trim()
        .to_string()
}

/// What dkimpy said of one message.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Whether the signature verified.
    pub ok: bool,
    /// `d=` and `s=` of the signature dkimpy checked (empty without one).
    pub domain: String,
    pub selector: String,
    /// dkimpy's log: why it failed.
    pub log: String,
}

/// Verifies each of `messages` (as received) with dkimpy, as a receiver would that
/// finds the TXT record `record` at `dns_name` (`SELECTOR._domainkey.DOMAIN`), and
/// nothing at any other name.
pub fn verify(dns_name: &str, record: &str, messages: &[Vec<u8>]) -> Vec<Verdict> {
    ensure_dkimpy();
    let dir = tempfile::tempdir().expect("temp dir");
    let record_file = dir.path().join("record.txt");
    std::fs::write(&record_file, record).unwrap();
    let mut command = Command::new("python3");
    command.arg(key_file("verify.py")).arg(dns_name).arg(&record_file);
    for (i, message) in messages.iter().enumerate() {
        let file = dir.path().join(format!("{i}.eml"));
        std::fs::write(&file, message).unwrap();
        command.arg(file);
    }
    let output = command.output().expect("run python3 tests/dkim/verify.py");
    assert!(
        output.status.success(),
        "verify.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<Verdict> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            Verdict {
                ok: v["ok"].as_bool().unwrap_or(false),
                domain: v["domain"].as_str().unwrap_or_default().to_string(),
                selector: v["selector"].as_str().unwrap_or_default().to_string(),
                log: v["log"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    assert_eq!(verdicts.len(), messages.len(), "one verdict a message");
    verdicts
}
