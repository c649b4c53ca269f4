//! Test module: panics on purpose, to prove that a module's panic becomes an error
//! naming the module and never ends the gateway.
//!
//! - `send` panics when the text contains `panic`, and succeeds otherwise;
//! - `new` (creating the provider) panics when the blob is `panic`;
//! - `parse_callback` always panics, as a sloppy `unwrap()` on a callback body would.

use plugin_api::{
    export_sms_module, CallbackReply, CallbackRequest, Host, ModuleError, OutboundSms, SmsModule, Step,
};

pub struct Panicky;

impl SmsModule for Panicky {
    const NAME: &'static str = "panicky";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "test module that panics when told to";

    fn check_config(_config: &str) -> Result<(), ModuleError> {
        Ok(())
    }

    fn new(config: &str, _host: Host) -> Result<Self, ModuleError> {
        if config == "panic" {
            panic!("told to panic in new");
        }
        Ok(Panicky)
    }

    fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError> {
        if sms.text.contains("panic") {
            panic!("told to panic by message {}", sms.id);
        }
        Ok(Step::Done {
            result: format!("panicky-{}", sms.id).into(),
        })
    }

    fn parse_callback(&self, request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
        let text = std::str::from_utf8(&request.body).unwrap();
        let value: u32 = text.parse().unwrap();
        panic!("parsed {value}, and panics anyway");
    }
}

export_sms_module!(Panicky);
