//! SMS provider modules: their configuration blob as the gateway holds it ([`blob`]),
//! finding and loading their libraries ([`loader`]), the logger
//! the gateway lends them ([`host`]), calling a started module safely ([`module`]: on
//! the module's own threads ([`calls`]), off the async runtime, under a time limit), and running one operation of a module to its
//! end ([`steps`]) with the HTTP requests it asks for ([`http`]).

pub mod blob;
pub mod calls;
pub mod conformance;
pub mod host;
pub mod http;
pub mod loader;
pub mod module;
pub mod name;
pub mod provider;
pub mod steps;

pub use blob::PluginConfig;
pub use loader::{library_file_name, list_dir, load, Library, LoadError, ModuleInfo};
pub use module::{CallError, Module};
pub use name::ModuleName;
