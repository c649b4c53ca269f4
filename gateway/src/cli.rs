//! The `gateway` command line: thin glue over the library. Errors become exit codes
//! here and nowhere else.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    logging::{self, LogFormat},
    modules::{self, conformance, Module, ModuleName},
    settings::{self, Loaded, StorageUrl},
    store::{PostgresStore, SqliteStore, Store},
};

#[derive(Debug, Parser)]
#[command(name = "gateway", version, about = "SMS and e-mail gateway")]
pub struct Cli {
    /// Settings file [default: $GATEWAY_CONFIG, else ./gateway.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log format, overriding log.format
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Inspect the SMS modules in sms.modules_dir.
    Modules {
        #[command(subcommand)]
        command: ModulesCommand,
    },
    /// Send one SMS through a running gateway's API.
    SendSms {
        #[command(flatten)]
        api: ApiArgs,
        /// The recipient (`+447911123456`, or national with sms.default_country_code)
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: String,
        /// Sender ID [default: sms.sender of the gateway]
        #[arg(long)]
        sender: Option<String>,
        /// Wait until the SMS is sent or failed, and print its final status
        #[arg(long)]
        wait: bool,
    },
    /// Send one e-mail through a running gateway's API.
    SendEmail {
        #[command(flatten)]
        api: ApiArgs,
        /// A recipient; repeat for more
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        html: Option<String>,
        /// Sender [default: email.default_from of the gateway]
        #[arg(long)]
        from: Option<String>,
        /// Wait until the e-mail is sent or failed
        #[arg(long)]
        wait: bool,
    },
    /// Bulk mailings through a running gateway's API.
    Mailing {
        #[command(subcommand)]
        command: MailingCommand,
    },
    /// The suppression list of a running gateway, as CSV (admin token).
    Suppressions {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: crate::suppressions_cli::SuppressionsCommand,
    },
    /// Check the SMTP connection: connect, TLS, AUTH, MAIL FROM email.default_from,
    /// RCPT TO email.check_address, RSET, QUIT; nothing is sent.
    CheckSmtp,
    /// Work on the queue store of storage.url.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Print the settings in force (secrets redacted) and where each came from.
    Config {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Where a running gateway's API is.
#[derive(Debug, clap::Args)]
struct ApiArgs {
    /// The gateway's API
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A bearer token of the gateway (auth.tokens)
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true, default_value = "")]
    token: String,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy this gateway's SQLite queue (storage.url) into an empty PostgreSQL database,
    /// for a fleet; stop the gateway first, then point storage.url at the new database.
    Migrate {
        /// The PostgreSQL database: postgres://USER:PASSWORD@HOST:PORT/NAME
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum MailingCommand {
    /// Queue one e-mail per recipient and show progress until every one is sent or failed.
    Send {
        #[command(flatten)]
        api: ApiArgs,
        /// CSV file of recipients: a header row naming an `email` column (a `name` column
        /// and any others become merge fields: `{{ name }}`, `{{ fields.COLUMN }}`), or
        /// addresses in the first column
        #[arg(long, value_name = "FILE.csv")]
        recipients: PathBuf,
        /// What a merge field a recipient lacks renders as: `empty`, or `fail` that recipient
        #[arg(long, value_name = "empty|fail", default_value = "empty", value_parser = ["empty", "fail"])]
        on_missing: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        html: Option<String>,
        #[arg(long)]
        from: Option<String>,
        /// Queue it and exit without waiting
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ModulesCommand {
    /// List every module library in sms.modules_dir, and why any is not loadable.
    List,
    /// Load a module, check the configured sms.plugin_config with it, and run its
    /// self-check with the HTTP requests it makes (each shown with its status and time);
    /// exits non-zero when the check fails.
    Check {
        /// Module name [default: sms.module]
        name: Option<String>,
    },
    /// Check a module library before shipping it (for provider authors): loading, bad
    /// blobs, one SMS through a local stand-in provider, a 500, broken answers and
    /// callbacks, a real callback of the provider (--callback), the self-check. Needs
    /// no settings.
    Conformance {
        /// The module library file
        file: PathBuf,
        /// The module's blob; `{{server}}` stands for the stand-in provider's URL
        #[arg(long, default_value = "")]
        blob: String,
        /// What the stand-in provider answers (the body)
        #[arg(long, default_value = "{}")]
        answer: String,
        /// The stand-in provider's HTTP status
        #[arg(long, default_value_t = 200)]
        status: u16,
        /// A callback body as the provider sends it (a delivery report or an inbound
        /// SMS), handed to the module's callback parser; nothing is posted anywhere
        #[arg(long, value_name = "BODY", requires = "expect")]
        callback: Option<String>,
        /// A header of the callback, NAME:VALUE; repeat for more
        #[arg(long, value_name = "NAME:VALUE", requires = "callback", value_parser = conformance::callback::parse_header)]
        callback_header: Vec<(String, String)>,
        /// The query string the provider calls the callback URL with (without `?`)
        #[arg(long, value_name = "QUERY", requires = "callback", default_value = "")]
        callback_query: String,
        /// What the callback must become
        #[arg(long, value_enum, requires = "callback")]
        expect: Option<conformance::Expected>,
    },
}

/// Runs the command line; the binary's whole `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The API commands talk to a running gateway and need no settings of their own.
    match cli.command {
        Command::SendSms { .. } | Command::SendEmail { .. } | Command::Mailing { .. } => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            return runtime.block_on(api_command(cli.command));
        }
        Command::Suppressions { api, command } => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let client = crate::client::ApiClient::new(&api.url, &api.token)?;
            return runtime.block_on(crate::suppressions_cli::run(&client, command));
        }
        Command::Modules {
            command:
                ModulesCommand::Conformance {
                    file,
                    blob,
                    answer,
                    status,
                    callback,
                    callback_header,
                    callback_query,
                    expect,
                },
        } => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let options = conformance::Options {
                blob,
                answer: conformance::Answer { status, body: answer },
                callback: callback
                    .zip(expect)
                    .map(|(body, expect)| conformance::CallbackCheck {
                        body,
                        headers: callback_header,
                        query: callback_query,
                        expect,
                    }),
            };
            let report = runtime.block_on(conformance::run(&file, &options));
            print!("{report}");
            return Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        _ => {}
    }
    let file = settings::config_file(cli.config.as_deref());
    let loaded =
        settings::load(&file).with_context(|| format!("settings refused ({})", file.path.display()))?;
    let log_format = match cli.log_format {
        Some(LogFormatArg::Text) => LogFormat::Text,
        Some(LogFormatArg::Json) => LogFormat::Json,
        None => loaded.settings.log.format,
    };
    // Into the log where there is one, on stderr otherwise.
    let logs = matches!(
        cli.command,
        Command::Serve
            | Command::CheckSmtp
            | Command::Modules {
                command: ModulesCommand::Check { .. }
            }
    );
    if logs {
        logging::init(&loaded.settings.log.level, log_format);
    }
    for name in &loaded.ignored_env {
        let why =
            "is not a setting (settings are GATEWAY_<SECTION>__<KEY>, e.g. GATEWAY_EMAIL__HOST); ignored";
        if logs {
            tracing::warn!("{name} {why}");
        } else {
            eprintln!("warning: {name} {why}");
        }
    }
    match cli.command {
        Command::Serve => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(crate::server::serve(file, loaded))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckSmtp => {
            let email = &loaded.settings.email;
            let target = crate::email::connect::SmtpTarget::new(email)?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let report = runtime.block_on(crate::email::check::check(email, &target));
            println!("SMTP connection check of {}", report.server);
            for step in &report.steps {
                let mark = if step.ok { "ok  " } else { "FAIL" };
                println!(
                    "  {mark} {:<10} {}",
                    format!("{:?}", step.step).to_lowercase(),
                    step.reply
                );
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::SendSms { .. }
        | Command::SendEmail { .. }
        | Command::Mailing { .. }
        | Command::Suppressions { .. }
        | Command::Modules {
            command: ModulesCommand::Conformance { .. },
        } => unreachable!("handled above"),
        Command::Store {
            command: StoreCommand::Migrate { to },
        } => {
            let StorageUrl::Sqlite(from) = &loaded.settings.storage.url else {
                anyhow::bail!("storage.url is not a SQLite file: there is nothing to migrate from");
            };
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let copied = runtime.block_on(crate::store::migrate::sqlite_to_postgres(from, &to))?;
            println!(
                "copied {} into the PostgreSQL database: {} messages, {} mailings, {} inbound SMS, \
                 {} held delivery reports, {} idempotency keys, {} suppressed addresses",
                from.display(),
                copied.messages,
                copied.mailings,
                copied.inbound,
                copied.held_reports,
                copied.idempotency_keys,
                copied.suppressions
            );
            println!("now set storage.url to that database and start the gateway");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { json } => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let loaded = runtime.block_on(with_console_if_saved(loaded));
            let shown = loaded.describe();
            if json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                let width = shown.keys().map(String::len).max().unwrap_or(0);
                for (key, item) in &shown {
                    println!("{key:width$}  {}  ({})", item.value, item.source);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Modules {
            command: ModulesCommand::List,
        } => {
            let dir = &loaded.settings.sms.modules_dir;
            let entries = modules::list_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
            println!("modules in {}:", dir.display());
            if entries.is_empty() {
                println!("  (none)");
            }
            for (path, result) in entries {
                match result {
                    Ok(info) => println!(
                        "  {:<12} {:<8} plugin-api {:<6} {}",
                        info.name, info.version, info.plugin_api, info.description
                    ),
                    Err(error) => println!(
                        "  {:<12} not loadable: {error}",
                        path.file_name().unwrap_or_default().to_string_lossy()
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Modules {
            command: ModulesCommand::Check { name },
        } => {
            let sms = &loaded.settings.sms;
            let name = match name {
                Some(name) => ModuleName::new(&name).map_err(anyhow::Error::msg)?,
                None => sms.module.clone(),
            };
            let library = modules::load(&sms.modules_dir, &name)?;
            println!("loaded   {}", library.info());
            let blob = &sms.plugin_config;
            library
                .check_config(blob.expose())
                .map_err(|error| blob.locate(error))?;
            println!("config   sms.plugin_config accepted");
            let module = Module::start(&library, blob.expose(), sms.call_timeout)
                .map_err(|error| blob.locate(error))?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let check = runtime.block_on(async {
                let http = modules::http::HttpClient::new(sms.http_timeout);
                crate::sms::send::self_check(&module, &http, &loaded.settings).await
            });
            for (n, step) in check.steps.iter().enumerate() {
                let answer = match (step.status, &step.error) {
                    (Some(status), _) => format!("HTTP {status}"),
                    (None, Some(error)) => error.clone(),
                    // A session of the module's own that became ready.
                    (None, None) if step.method == "SESSION" => "ready, then ended".into(),
                    (None, None) => "no answer".into(),
                };
                println!(
                    "step {:<3} {} {}: {answer} in {} ms",
                    n + 1,
                    step.method,
                    step.url,
                    step.duration_ms
                );
            }
            if let Some(error) = &check.error {
                println!("check    FAILED: {error}");
                return Ok(ExitCode::FAILURE);
            }
            println!("check    ok: {}", check.result.unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `send-sms`, `send-email` and `mailing send`.
async fn api_command(command: Command) -> anyhow::Result<ExitCode> {
    use crate::client::{read_recipients, ApiClient};
    use serde_json::json;
    let final_status = |message: &serde_json::Value| -> ExitCode {
        println!(
            "{} {}",
            message["id"].as_str().unwrap_or(""),
            message["status"].as_str().unwrap_or("")
        );
        if let Some(error) = message["error"].as_str() {
            println!("error: {error}");
        }
        if message["status"] == "failed" {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    };
    match command {
        Command::SendSms {
            api,
            to,
            text,
            sender,
            wait,
        } => {
            let client = ApiClient::new(&api.url, &api.token)?;
            let mut body = json!({ "to": to, "text": text });
            if let Some(sender) = sender {
                body["sender"] = sender.into();
            }
            let id = client.post("/v1/sms", &body).await?["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !wait {
                println!("{id}");
                return Ok(ExitCode::SUCCESS);
            }
            Ok(final_status(&client.wait_message(&id).await?))
        }
        Command::SendEmail {
            api,
            to,
            subject,
            text,
            html,
            from,
            wait,
        } => {
            let client = ApiClient::new(&api.url, &api.token)?;
            let body = json!({ "to": to, "subject": subject, "text": text, "html": html, "from": from });
            let body = strip_nulls(body);
            let id = client.post("/v1/email", &body).await?["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !wait {
                println!("{id}");
                return Ok(ExitCode::SUCCESS);
            }
            Ok(final_status(&client.wait_message(&id).await?))
        }
        Command::Mailing {
            command:
                MailingCommand::Send {
                    api,
                    recipients,
                    on_missing,
                    subject,
                    text,
                    html,
                    from,
                    no_wait,
                },
        } => {
            let client = ApiClient::new(&api.url, &api.token)?;
            let recipients = read_recipients(&recipients)?;
            let body = strip_nulls(json!({
                "recipients": recipients, "subject": subject, "text": text, "html": html,
                "from": from, "on_missing": on_missing,
            }));
            let id = client.post("/v1/mailings", &body).await?["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            // The gateway's count: an address listed twice is one e-mail.
            let total = client.get(&format!("/v1/mailings/{id}")).await?["total"]
                .as_u64()
                .unwrap_or(recipients.len() as u64);
            eprintln!("mailing {id}: {total} recipients queued");
            if no_wait {
                println!("{id}");
                return Ok(ExitCode::SUCCESS);
            }
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} done  {msg}  [{elapsed_precise}]",
                )
                .expect("a valid template"),
            );
            loop {
                let counts = client.get(&format!("/v1/mailings/{id}")).await?;
                let count = |key: &str| counts[key].as_u64().unwrap_or(0);
                let (sent, failed, suppressed) = (count("sent"), count("failed"), count("suppressed"));
                bar.set_position(sent + failed + suppressed);
                bar.set_message(format!("sent {sent}, failed {failed}, suppressed {suppressed}"));
                if count("queued") + count("sending") == 0 {
                    bar.finish();
                    println!("{id} sent {sent} failed {failed}");
                    return Ok(if failed == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        _ => unreachable!("only API commands are passed here"),
    }
}

/// The JSON object without its `null` members (optional flags not given).
fn strip_nulls(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    value
}

/// `loaded` with the console's latest saved version over the file, as a gateway
/// starting now would have it, so that `gateway config` shows `console (version N)`
/// where the console set a key. A SQLite store that does not exist yet is not created;
/// a store that cannot be read leaves the file's settings, with a warning.
async fn with_console_if_saved(loaded: Loaded) -> Loaded {
    let layer = async {
        // Opened as a reader only: not `server::open_store`, which, for SQLite, ends the
        // leases of a gateway it takes for dead, and this one may be running.
        let store: Box<dyn Store> = match &loaded.settings.storage.url {
            StorageUrl::Sqlite(path) if !path.exists() => return Ok(None),
            StorageUrl::Sqlite(path) => Box::new(SqliteStore::open(path)?),
            StorageUrl::Postgres(url) => Box::new(PostgresStore::connect(url.expose()).await?),
        };
        Ok::<_, anyhow::Error>(crate::console_settings::latest_layer(store.as_ref()).await?)
    }
    .await;
    match layer.map(|layer| loaded.with_console(layer)) {
        Ok(Ok(with_console)) => with_console,
        Ok(Err(error)) => {
            eprintln!("warning: the console's saved settings are refused ({error}); showing the file's");
            loaded
        }
        Err(error) => {
            eprintln!("warning: cannot read the console's saved settings ({error:#}); showing the file's");
            loaded
        }
    }
}
