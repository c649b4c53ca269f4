//! Finds a module library by name inside the modules directory, loads it, and checks
//! that it is a module built against a compatible `plugin-api`.
//!
//! Each failure is one [`LoadError`] that names the file and the reason, for the admin
//! who configured it. Libraries are loaded through abi_stable's library header (not
//! `RootModule::load_from_file`, which caches the first module of a type per process),
//! so that several different modules can live in one process. abi_stable never
//! unloads a library: a module loaded once stays mapped until the process exits, and
//! a new version of a module shipped in place of the old file is loaded from a copy
//! named after its contents (see [`private_copy`]).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use abi_stable::{
    library::{lib_header_from_path, LibraryError},
    std_types::RResult,
};
use plugin_api::{before_1_2, ModuleError, ModuleRootRef, PLUGIN_API_VERSION};
use sha2::{Digest, Sha256};

use super::{
    host::{host_before_1_2_for, host_for},
    name::ModuleName,
    provider::ProviderObject,
};

/// The file name of module `name` on this platform: `libNAME.so`, `libNAME.dylib`,
/// or `NAME.dll`.
pub fn library_file_name(name: &ModuleName) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name,
        std::env::consts::DLL_SUFFIX
    )
}

/// What a module says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The `plugin-api` version the module was built against.
    pub plugin_api: String,
    pub path: PathBuf,
}

impl fmt::Display for ModuleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (plugin-api {}) from {}",
            self.name,
            self.version,
            self.plugin_api,
            self.path.display()
        )
    }
}

/// Why a module could not be loaded or started. Every variant names the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("{}: no such file (module `{name}` is looked up in sms.modules_dir only)", path.display())]
    Missing { name: String, path: PathBuf },
    #[error("{}: not a loadable library: {reason}", path.display())]
    NotALibrary { path: PathBuf, reason: String },
    #[error("{}: not a gateway SMS module: {reason}", path.display())]
    NotAModule { path: PathBuf, reason: String },
    #[error("{}: built against an incompatible plugin-api (this gateway has plugin-api {}): {reason}", path.display(), PLUGIN_API_VERSION)]
    Incompatible { path: PathBuf, reason: String },
    #[error("{}: built against plugin-api {module_api}, newer than this gateway's plugin-api {}: the module may need what this gateway cannot do; upgrade the gateway, or use a build of the module for plugin-api {}", path.display(), PLUGIN_API_VERSION, PLUGIN_API_VERSION)]
    Newer { path: PathBuf, module_api: String },
    #[error("{}: the module calls itself `{reported}`, but a module's name must match its file name (`{expected}`)", path.display())]
    NameMismatch {
        path: PathBuf,
        expected: String,
        reported: String,
    },
    #[error("{}: module `{module}` refused its configuration (sms.plugin_config): {error}", path.display())]
    BadConfig {
        path: PathBuf,
        module: String,
        error: ModuleError,
    },
    #[error("{}: module `{module}` failed to start: {error}", path.display())]
    StartFailed {
        path: PathBuf,
        module: String,
        error: ModuleError,
    },
}

/// A loaded, checked module library: can check blobs and start providers.
#[derive(Clone)]
pub struct Library {
    info: ModuleInfo,
    root: Root,
}

/// A library's root module, read with the layout of the plugin-api it was built for.
#[derive(Clone, Copy)]
enum Root {
    Current(ModuleRootRef),
    Before1_2(before_1_2::ModuleRootRef),
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library").field("info", &self.info).finish()
    }
}

impl Library {
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// Asks the module whether it accepts this configuration blob.
    pub fn check_config(&self, blob: &str) -> Result<(), LoadError> {
        let check = match self.root {
            Root::Current(root) => root.check_config(),
            Root::Before1_2(root) => root.check_config(),
        };
        match check(blob.into()) {
            RResult::ROk(()) => Ok(()),
            RResult::RErr(error) => Err(LoadError::BadConfig {
                path: self.info.path.clone(),
                module: self.info.name.clone(),
                error,
            }),
        }
    }

    /// Checks the blob, then creates a provider from it, with a host that logs as the
    /// module.
    pub fn start(&self, blob: &str) -> Result<ProviderObject, LoadError> {
        self.check_config(blob)?;
        let name = &self.info.name;
        let started = match self.root {
            Root::Current(root) => {
                root.new_provider()(blob.into(), host_for(name)).map(ProviderObject::Current)
            }
            Root::Before1_2(root) => {
                root.new_provider()(blob.into(), host_before_1_2_for(name)).map(ProviderObject::Before1_2)
            }
        };
        match started {
            RResult::ROk(provider) => Ok(provider),
            RResult::RErr(error) if error.kind == plugin_api::ErrorKind::CONFIGURATION => {
                Err(LoadError::BadConfig {
                    path: self.info.path.clone(),
                    module: self.info.name.clone(),
                    error,
                })
            }
            RResult::RErr(error) => Err(LoadError::StartFailed {
                path: self.info.path.clone(),
                module: self.info.name.clone(),
                error,
            }),
        }
    }
}

/// Loads module `name` from `dir`. Blocking (it reads and maps a file): call it from a
/// blocking thread in async code.
pub fn load(dir: &Path, name: &ModuleName) -> Result<Library, LoadError> {
    let path = dir.join(library_file_name(name));
    if !path.exists() {
        return Err(LoadError::Missing {
            name: name.to_string(),
            path,
        });
    }
    let library = load_path(&path)?;
    if library.info.name != name.as_str() {
        return Err(LoadError::NameMismatch {
            path,
            expected: name.to_string(),
            reported: library.info.name,
        });
    }
    Ok(library)
}

/// Loads the module library at `path`, whatever its name.
pub fn load_path(path: &Path) -> Result<Library, LoadError> {
    // One load at a time: two loads of the same library would share the copy's name,
    // and one could remove it while the other opens it.
    static LOADING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOADING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let copy = private_copy(path)?;
    let header = lib_header_from_path(&copy).map_err(|e| classify(path, e));
    // Mapped (or refused): the copy's name stays known to the dynamic loader, the file
    // is no longer needed.
    let _ = std::fs::remove_file(&copy);
    let header = header?;
    let plugin_api = header.version_strings().version.to_string();
    if is_newer_minor(&plugin_api, PLUGIN_API_VERSION) {
        return Err(LoadError::Newer {
            path: path.to_path_buf(),
            module_api: plugin_api,
        });
    }
    // Read with the layout its plugin-api had: see plugin_api::before_1_2 for why a
    // 1.0 or 1.1 module cannot be read with this gateway's.
    let (root, name, version, description) = if is_before_1_2(&plugin_api) {
        let root = header
            .init_root_module::<before_1_2::ModuleRootRef>()
            .map_err(|e| classify(path, e))?;
        (
            Root::Before1_2(root),
            root.name(),
            root.version(),
            root.description(),
        )
    } else {
        let root = header
            .init_root_module::<ModuleRootRef>()
            .map_err(|e| classify(path, e))?;
        (
            Root::Current(root),
            root.name(),
            root.version(),
            root.description(),
        )
    };
    let info = ModuleInfo {
        name: name.to_string(),
        version: version.to_string(),
        description: description.to_string(),
        plugin_api,
        path: path.to_path_buf(),
    };
    Ok(Library { info, root })
}

/// A copy of the library at `path`, named after its contents, in a directory private
/// to this process, for the dynamic loader to open.
///
/// The loader keeps a library for the life of the process under the path it was opened
/// by (and abi_stable never unloads one), so opening `libacme.so` again after a provider
/// shipped a new version in its place would give the old code back. Named after its
/// bytes, a new version is a new file; the same bytes are the same file, loaded once.
fn private_copy(path: &Path) -> Result<PathBuf, LoadError> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR
        .get_or_init(|| {
            tempfile::Builder::new()
                .prefix("gateway-modules-")
                .tempdir()
                .map(|dir| dir.keep())
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| LoadError::NotALibrary {
            path: path.to_path_buf(),
            reason: format!("cannot make a private directory to load modules from: {reason}"),
        })?;
    let bytes = std::fs::read(path).map_err(|e| LoadError::NotALibrary {
        path: path.to_path_buf(),
        reason: format!("cannot read it: {e}"),
    })?;
    let digest: String = Sha256::digest(&bytes)[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let copy = dir.join(format!("{digest}-{name}"));
    let partial = dir.join(format!(".{digest}-{name}.partial"));
    std::fs::write(&partial, &bytes)
        .and_then(|()| std::fs::rename(&partial, &copy))
        .map_err(|e| LoadError::NotALibrary {
            path: path.to_path_buf(),
            reason: format!("cannot copy it to {}: {e}", dir.display()),
        })?;
    Ok(copy)
}

/// Every file in `dir` that looks like a module library (by its name), loaded or with
/// the reason it cannot be, sorted by file name.
pub fn list_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, Result<ModuleInfo, LoadError>)>> {
    let (prefix, suffix) = (std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file_name
            .strip_prefix(prefix)
            .and_then(|n| n.strip_suffix(suffix))
        else {
            continue;
        };
        let result = match ModuleName::new(stem) {
            Ok(name) => load(dir, &name).map(|library| library.info),
            Err(reason) => Err(LoadError::NotAModule {
                path: path.clone(),
                reason,
            }),
        };
        out.push((path, result));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Whether a module's plugin-api version is 1.0 or 1.1, whose layouts
/// `plugin_api::before_1_2` keeps.
fn is_before_1_2(module: &str) -> bool {
    let mut parts = module.split('.');
    parts.next() == Some("1") && matches!(parts.next(), Some("0" | "1"))
}

/// Whether `module` (a module's plugin-api version) is a later minor version of the
/// same major as `gateway`. abi_stable accepts it (it compares major versions only, and
/// prefix types let an older reader ignore the entries a newer writer added), but such
/// a module may count on what only a newer gateway does (sessions, since 1.2), so the
/// gateway refuses it with both versions named. A different major version is left to
/// abi_stable, which refuses it.
fn is_newer_minor(module: &str, gateway: &str) -> bool {
    let parse = |version: &str| -> Option<(u64, u64)> {
        let mut parts = version.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(module), parse(gateway)) {
        (Some((module_major, module_minor)), Some((gateway_major, gateway_minor))) => {
            module_major == gateway_major && module_minor > gateway_minor
        }
        _ => false,
    }
}

/// Turns abi_stable's error into the admin's terms.
fn classify(path: &Path, error: LibraryError) -> LoadError {
    let path = path.to_path_buf();
    match error {
        LibraryError::OpenError { err, .. } => LoadError::NotALibrary {
            path,
            reason: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotAModule {
            path,
            reason:
                "it exports no abi_stable root module (was it built with plugin_api::export_sms_module!?)"
                    .into(),
        },
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => LoadError::Incompatible {
            path,
            reason: format!(
                "the module was built against plugin-api {actual_version}, whose major version differs"
            ),
        },
        LibraryError::AbiInstability(details) => LoadError::Incompatible {
            path,
            reason: format!(
                "its types differ from this gateway's: {}",
                first_lines(&details.to_string(), 6)
            ),
        },
        LibraryError::InvalidAbiHeader(header) => LoadError::Incompatible {
            path,
            reason: format!("it was built with an incompatible abi_stable ({header:?})"),
        },
        LibraryError::InvalidCAbi { .. } => LoadError::Incompatible {
            path,
            reason: "it was built by a compiler with another C ABI".into(),
        },
        LibraryError::RootModule { err, .. } => LoadError::NotAModule {
            path,
            reason: format!("its root module failed to initialise: {err}"),
        },
        LibraryError::ParseVersionError(e) => LoadError::Incompatible {
            path,
            reason: format!("its plugin-api version cannot be read: {e}"),
        },
        other => LoadError::NotAModule {
            path,
            reason: first_lines(&other.to_string(), 6),
        },
    }
}

fn first_lines(text: &str, n: usize) -> String {
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n + 1)
        .collect();
    let more = lines.len() > n;
    lines.truncate(n);
    let mut out = lines.join(" | ");
    if more {
        out.push_str(" | …");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_newer_minor;

    #[test]
    fn only_a_later_minor_of_the_same_major_is_newer() {
        assert!(is_newer_minor("1.3.0", "1.2.0"));
        assert!(is_newer_minor("1.10.0", "1.2.5"));
        for (module, gateway) in [
            ("1.2.9", "1.2.0"),
            ("1.0.0", "1.2.0"),
            ("2.0.0", "1.2.0"),
            ("x", "1.2.0"),
        ] {
            assert!(!is_newer_minor(module, gateway), "{module} in {gateway}");
        }
    }
}
