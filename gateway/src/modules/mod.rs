//! SMS provider modules: finding and loading their libraries ([`loader`]), the logger
//! the gateway lends them ([`host`]), and calling a started module safely
//! ([`module`]: off the async runtime, under a time limit).

pub mod conformance;
pub mod host;
pub mod loader;
pub mod module;

pub use loader::{library_file_name, list_dir, load, Library, LoadError, ModuleInfo};
pub use module::{CallError, Module};
