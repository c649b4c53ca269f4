//! `docs/modules.md`, followed as a provider would: its Rust blocks are built into
//! `libacme.so` (`tests/modules/guide`), its `Cargo.toml` is the one that crate is built
//! with, and each `gateway modules conformance` command it shows passes on that library,
//! with the checks its sample output lists.

use std::process::Command;

use e2e::{build_dir, gateway_bin};

const GUIDE: &str = include_str!("../../docs/modules.md");
const GUIDE_CRATE: &str = include_str!("../modules/guide/Cargo.toml");

/// The fenced blocks of the guide written in `language`, in order.
fn blocks(language: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    // Inside a block: whether it is in `language`, and its text so far.
    let mut inside: Option<(bool, String)> = None;
    for line in GUIDE.lines() {
        match (line.strip_prefix("```"), inside.take()) {
            (Some(fence), None) => inside = Some((fence.trim() == language, String::new())),
            (Some(_), Some((wanted, text))) => {
                if wanted {
                    blocks.push(text);
                }
            }
            (None, Some((wanted, mut text))) => {
                if wanted {
                    text.push_str(line);
                    text.push('\n');
                }
                inside = Some((wanted, text));
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The words of a shell command line as `sh` splits them: blanks separate words,
/// `'…'` and `"…"` quote (no escapes are needed by the guide), `\` + newline continues.
fn shell_words(text: &str) -> Vec<String> {
    let text = text.replace("\\\n", " ");
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let quoted: String = chars.by_ref().take_while(|&q| q != c).collect();
                word.get_or_insert_with(String::new).push_str(&quoted);
            }
            '#' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The `[dependencies]` names of a Cargo.toml text.
fn dependencies(toml: &str) -> Vec<String> {
    let mut names: Vec<String> = toml
        .split("\n[")
        .find(|section| section.starts_with("dependencies]"))
        .expect("a [dependencies] section")
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once('='))
        // `serde = …` or `serde.workspace = true`
        .map(|(key, _)| key.split('.').next().unwrap_or(key).trim().to_string())
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    names.sort();
    names
}

#[test]
fn the_guides_cargo_toml_is_the_one_its_module_is_built_with() {
    let toml = blocks("toml")
        .into_iter()
        .find(|block| block.contains("[package]"))
        .expect("the guide shows a Cargo.toml");
    assert!(toml.contains("name = \"acme\""), "{toml}");
    assert!(toml.contains("crate-type = [\"cdylib\", \"rlib\"]"), "{toml}");
    assert_eq!(dependencies(&toml), dependencies(GUIDE_CRATE));
    // The guide asks for the plugin-api this repository has (major.minor).
    let version = plugin_api::PLUGIN_API_VERSION.rsplit_once('.').unwrap().0;
    assert!(toml.contains(&format!("plugin-api = \"{version}\"")), "{toml}");
}

#[test]
fn the_guides_conformance_commands_pass_on_the_guides_module() {
    let library = build_dir().join("libacme.so");
    let commands: Vec<Vec<String>> = blocks("sh")
        .iter()
        .flat_map(|block| {
            block
                .replace("\\\n", " ")
                .lines()
                .map(shell_words)
                .collect::<Vec<_>>()
        })
        .filter(|words| words.starts_with(&["gateway".into(), "modules".into(), "conformance".into()]))
        .collect();
    assert_eq!(
        commands.len(),
        2,
        "the guide shows a send check and a callback check"
    );
    let sample = blocks("text")
        .into_iter()
        .find(|block| block.starts_with("conformance of "))
        .expect("the guide shows the check's output");

    for words in &commands {
        assert_eq!(words[3], "target/release/libacme.so", "{words:?}");
        let output = Command::new(gateway_bin())
            .args(&words[1..3])
            .arg(&library)
            .args(&words[4..])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{words:?}\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if words.iter().any(|w| w == "--callback") {
            // Every check of the sample output, with the verdict it shows.
            for line in sample.lines().skip(1) {
                let check = line.split_once(": ").map_or(line, |(check, _)| check);
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{check}: "))),
                    "the guide shows `{check}`, the check printed:\n{text}"
                );
            }
            assert!(
                text.contains(
                    "delivery report: delivered, provider id \"acme-1\", message id \"01J9ZQ3MSG\""
                ),
                "{text}"
            );
        }
    }
}

#[test]
fn shell_words_split_as_sh_does_for_the_guides_commands() {
    assert_eq!(
        shell_words("gateway x \\\n    --blob '{\"a\": \"b c\"}' --h 'K: V'  # comment"),
        ["gateway", "x", "--blob", "{\"a\": \"b c\"}", "--h", "K: V"]
    );
}
