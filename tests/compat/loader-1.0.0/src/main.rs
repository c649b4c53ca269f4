//! `compat-loader LIBRARY [BLOB]`: opens a module library the way a gateway built
//! against plugin-api 1.0.0 does (abi_stable's version and layout checks, then the root
//! module), prints `loaded NAME VERSION (plugin-api X)`, then checks the blob and starts
//! a provider from it as that gateway did, and prints `started` or `refused: REASON`.
//! The compatibility tests run it on libraries built against newer plugin-apis, to
//! pin what an older gateway makes of them.

use abi_stable::{
    library::lib_header_from_path,
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult, RStr},
};
use plugin_api::{Host, HostLog, HostLog_TO, LogLevel, ModuleRootRef};

/// The 1.0 gateway's side of a host: a log, and nothing else.
#[derive(Clone)]
struct Log;

impl HostLog for Log {
    fn log(&self, _level: LogLevel, message: RStr<'_>) {
        eprintln!("module: {message}");
    }
}

fn main() {
    let path = std::env::args_os().nth(1).expect("usage: compat-loader LIBRARY");
    let header = match lib_header_from_path(path.as_ref()) {
        Ok(header) => header,
        Err(error) => {
            println!("refused: {error}");
            std::process::exit(1);
        }
    };
    let plugin_api = header.version_strings().version.to_string();
    let root = match header.init_root_module::<ModuleRootRef>() {
        Ok(root) => root,
        Err(error) => {
            println!("refused: {error}");
            std::process::exit(1);
        }
    };
    println!(
        "loaded {} {} (plugin-api {plugin_api})",
        root.name(),
        root.version()
    );
    let blob = std::env::args().nth(2).unwrap_or_default();
    if let RResult::RErr(error) = root.check_config()(RStr::from_str(&blob)) {
        println!("refused: {}", error.message);
        std::process::exit(1);
    }
    let host = Host::new(HostLog_TO::from_ptr(RArc::new(Log), TD_Opaque));
    match root.new_provider()(RStr::from_str(&blob), host) {
        RResult::ROk(_) => println!("started"),
        RResult::RErr(error) => {
            println!("refused: {}", error.message);
            std::process::exit(1);
        }
    }
}
