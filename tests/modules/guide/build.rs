//! Writes the Rust blocks of `docs/modules.md`, in order, into `$OUT_DIR/guide.rs`,
//! which `src/lib.rs` includes: the guide's code is this crate's code.
//!
//! Every fenced block of the guide must say its language, so that none is skipped by
//! mistake (and rustdoc would take an unlabelled one for Rust); none may be marked to
//! be ignored.

use std::{env, fs, path::Path};

fn main() {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/modules.md");
    println!("cargo:rerun-if-changed={}", guide.display());
    let text = fs::read_to_string(&guide).unwrap_or_else(|e| panic!("cannot read {}: {e}", guide.display()));

    let mut code = String::new();
    let mut open: Option<&str> = None;
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let Some(fence) = line.trim_start().strip_prefix("```") else {
            if open == Some("rust") {
                code.push_str(line);
                code.push('\n');
            }
            continue;
        };
        match open {
            None => {
                let language = fence.trim();
                assert!(
                    !language.is_empty(),
                    "docs/modules.md:{number}: a code block without a language (write ```rust, ```toml, ```sh or ```text)"
                );
                assert!(
                    !language.starts_with("rust") || language == "rust",
                    "docs/modules.md:{number}: ```{language}: every Rust block of the guide is built"
                );
                if language == "rust" {
                    code.push_str(&format!("// docs/modules.md:{}\n", number + 1));
                }
                open = Some(if language == "rust" { "rust" } else { "other" });
            }
            Some(_) => open = None,
        }
    }
    assert!(open.is_none(), "docs/modules.md: a code block is not closed");
    assert!(!code.is_empty(), "docs/modules.md has no Rust block");
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("guide.rs");
    fs::write(&out, code).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
