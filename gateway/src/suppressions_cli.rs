//! `gateway suppressions import|export`: the suppression list as CSV, through a running
//! gateway's admin API (`/v1/admin/suppressions`), so that a list kept elsewhere (a CRM,
//! another sending service) can be brought in and taken out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::json;

use crate::client::ApiClient;

/// Addresses sent per request: the API takes up to 10,000.
const PER_REQUEST: usize = 5_000;

#[derive(Debug, Subcommand)]
pub enum SuppressionsCommand {
    /// Add every address of a CSV file (an `email` or `address` column, else the first
    /// column) to the suppression list, as added by an admin.
    Import {
        /// The CSV file
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
        /// A note kept with each entry
        #[arg(long)]
        detail: Option<String>,
    },
    /// Print the whole list as CSV: address,reason,detail,created_at.
    Export,
}

/// Runs `command` against the API at `client`.
pub async fn run(client: &ApiClient, command: SuppressionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SuppressionsCommand::Import { file, detail } => {
            let addresses = read_addresses(&file)?;
            let mut added = 0;
            for chunk in addresses.chunks(PER_REQUEST) {
                let body = json!({ "addresses": chunk, "detail": detail });
                added += client.post("/v1/admin/suppressions", &body).await?["added"]
                    .as_u64()
                    .unwrap_or(0);
            }
            println!(
                "{} addresses read, {added} added to the suppression list ({} were listed already)",
                addresses.len(),
                addresses.len() as u64 - added
            );
            Ok(ExitCode::SUCCESS)
        }
        SuppressionsCommand::Export => {
            let stdout = std::io::stdout();
            let mut writer = csv::Writer::from_writer(stdout.lock());
            writer.write_record(["address", "reason", "detail", "created_at"])?;
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    Some(after) => format!("/v1/admin/suppressions?limit=1000&after={}", encode(after)),
                    None => "/v1/admin/suppressions?limit=1000".to_string(),
                };
                let page = client.get(&path).await?;
                for item in page["items"].as_array().into_iter().flatten() {
                    let field = |key: &str| item[key].as_str().unwrap_or("").to_string();
                    writer.write_record([
                        field("address"),
                        field("reason"),
                        field("detail"),
                        field("created_at"),
                    ])?;
                }
                match page["next"].as_str() {
                    Some(next) => after = Some(next.to_string()),
                    None => break,
                }
            }
            writer.flush()?;
            std::io::stdout().flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A query value, percent-encoded (an address may hold `+`, `&` or `%`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The addresses of a CSV file: the `email` or `address` column of a header row, else
/// the first column.
fn read_addresses(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut column = 0;
    let mut addresses = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: line {}", path.display(), line + 1))?;
        if line == 0 {
            if let Some(index) = row
                .iter()
                .position(|f| f.eq_ignore_ascii_case("email") || f.eq_ignore_ascii_case("address"))
            {
                column = index;
                continue;
            }
        }
        if let Some(address) = row.get(column).filter(|a| !a.is_empty()) {
            addresses.push(address.to_string());
        }
    }
    if addresses.is_empty() {
        bail!("{} lists no addresses", path.display());
    }
    Ok(addresses)
}
