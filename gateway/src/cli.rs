//! The `gateway` command line: thin glue over the library. Errors become exit codes
//! here and nowhere else.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    logging,
    modules::{self, Module},
    settings::{self, LogFormat, ModuleName},
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
    /// Check the SMTP connection: connect, TLS, AUTH, MAIL FROM email.default_from,
    /// RCPT TO email.check_address, RSET, QUIT; nothing is sent.
    CheckSmtp,
    /// Print the settings in force (secrets redacted) and where each came from.
    Config {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ModulesCommand {
    /// List every module library in sms.modules_dir, and why any is not loadable.
    List,
    /// Load a module, check the configured sms.plugin_config with it, and run its
    /// self-check.
    Check {
        /// Module name [default: sms.module]
        name: Option<String>,
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
    let file = settings::config_file(cli.config.as_deref());
    let loaded =
        settings::load(&file).with_context(|| format!("settings refused ({})", file.path.display()))?;
    let log_format = cli.log_format.map(|f| match f {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    match cli.command {
        Command::Serve => {
            logging::init(&loaded.settings.log, log_format);
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(crate::server::serve(file, loaded))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckSmtp => {
            logging::init(&loaded.settings.log, log_format);
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
        Command::Config { json } => {
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
            logging::init(&loaded.settings.log, log_format);
            let sms = &loaded.settings.sms;
            let name = match name {
                Some(name) => ModuleName::new(&name).map_err(anyhow::Error::msg)?,
                None => sms.module.clone(),
            };
            let library = modules::load(&sms.modules_dir, &name)?;
            println!("loaded   {}", library.info());
            library.check_config(sms.plugin_config.expose())?;
            println!("config   sms.plugin_config accepted");
            let module = Module::start(&library, sms.plugin_config.expose(), sms.call_timeout)?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            match runtime.block_on(module.self_check())? {
                plugin_api::Step::Done { result } => println!("check    {result}"),
                plugin_api::Step::Http(request) => {
                    bail!(
                        "the self-check wants to contact {} {}, which `modules check` does not do; \
                         use POST /v1/admin/sms/test on a running gateway",
                        request.method,
                        request.url
                    )
                }
                _ => bail!("the module answered its self-check with a step this gateway does not know"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
