//! Test module: a library that exports an abi_stable root module under the gateway's
//! root-module name but claims to be built against `plugin-api` 2.0.0, with another
//! layout. It stands for a module built against an incompatible `plugin-api`; the
//! gateway must refuse it with a clear error and not crash.

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule, prefix_type::PrefixTypeTrait,
    sabi_types::VersionStrings, std_types::RStr, StableAbi,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ModuleRootRef)))]
pub struct ModuleRoot {
    pub name: RStr<'static>,
    #[sabi(last_prefix_field)]
    pub send: extern "C" fn(RStr<'_>) -> u32,
}

impl RootModule for ModuleRootRef {
    declare_root_module_statics! {ModuleRootRef}
    const BASE_NAME: &'static str = "sms_module";
    const NAME: &'static str = "sms_module";
    const VERSION_STRINGS: VersionStrings = VersionStrings {
        version: RStr::from_str("2.0.0"),
    };
}

extern "C" fn send(text: RStr<'_>) -> u32 {
    text.len() as u32
}

#[export_root_module]
pub fn get_library() -> ModuleRootRef {
    ModuleRoot {
        name: RStr::from_str("wrongabi"),
        send,
    }
    .leak_into_prefix()
}
