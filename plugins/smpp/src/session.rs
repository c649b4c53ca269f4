//! One SMPP session's state: binding, submits awaiting their answers (the parts of a
//! long text count as one SMS, sent when every part is acknowledged), deliveries
//! (receipts and MO), keep-alives and unbinding.

use std::collections::HashMap;

use plugin_api::{CallbackEvent, ModuleError, OutboundSms, SessionAction};
use rusmpp::{
    extra::{concatenation::SubmitSmMultipartExt, encoding::ucs2::Ucs2},
    pdus::{BindReceiver, BindTransceiver, BindTransmitter, DeliverSmResp, SubmitSm},
    tlvs::TlvValue,
    types::COctetString,
    values::{EsmClass, InterfaceVersion, Npi, RegisteredDelivery, Ton},
    Command, CommandId, CommandStatus, Pdu,
};

use crate::{config::Config, parts::PartIds, pdu};

/// What a session binds as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Transceiver,
    Transmitter,
    Receiver,
}

/// What answered a submit.
enum Answer {
    /// A `submit_sm_resp`: its status, and the message id (empty when refused).
    Status(CommandStatus, String),
    GenericNack,
}

/// An SMS whose parts are on the wire.
struct InFlight {
    sms_id: String,
    /// Each part's message id once acknowledged, in order.
    ids: Vec<Option<String>>,
    /// The first error a part got: the SMS's outcome.
    error: Option<ModuleError>,
    /// Parts not answered yet.
    unanswered: usize,
}

pub struct Session {
    pub role: Role,
    buffer: Vec<u8>,
    next_sequence: u32,
    pub bound: bool,
    /// The gateway asked to end: unbind once nothing is pending.
    closing: bool,
    unbinding: bool,
    /// An `enquire_link` sent and not yet answered.
    link_unanswered: bool,
    /// Submit sequence number → the SMS in `in_flight` and which part.
    parts: HashMap<u32, (u64, usize)>,
    in_flight: HashMap<u64, InFlight>,
    next_sms: u64,
    /// The reference number of the next concatenated SMS.
    next_reference: u8,
}

impl Session {
    pub fn new(role: Role) -> Session {
        Session {
            role,
            buffer: Vec::new(),
            next_sequence: 1,
            bound: false,
            closing: false,
            unbinding: false,
            link_unanswered: false,
            parts: HashMap::new(),
            in_flight: HashMap::new(),
            next_sms: 0,
            next_reference: 0,
        }
    }

    fn sequence(&mut self) -> u32 {
        let n = self.next_sequence;
        // Sequence numbers run 1..=0x7FFFFFFF.
        self.next_sequence = if n >= 0x7FFF_FFFF { 1 } else { n + 1 };
        n
    }

    fn write(&mut self, status: CommandStatus, sequence: u32, pdu: impl Into<Pdu>) -> SessionAction {
        SessionAction::write(pdu::encode(&Command::new(status, sequence, pdu)))
    }

    /// The bind to write on connecting.
    pub fn bind(&mut self, config: &Config) -> Result<Vec<SessionAction>, ModuleError> {
        let system_id = pdu::field("system_id", &config.system_id).map_err(ModuleError::configuration)?;
        let password = COctetString::from_vec(format!("{}\0", config.password.expose()).into_bytes())
            .map_err(|_| ModuleError::configuration("password: does not fit SMPP (at most 8 characters)"))?;
        let system_type =
            pdu::field("system_type", &config.system_type).map_err(ModuleError::configuration)?;
        let sequence = self.sequence();
        macro_rules! bind {
            ($pdu:ident) => {
                $pdu::builder()
                    .system_id(system_id)
                    .password(password)
                    .system_type(system_type)
                    .interface_version(InterfaceVersion::Smpp3_4)
                    .addr_ton(Ton::Unknown)
                    .addr_npi(Npi::Unknown)
                    .address_range(COctetString::empty())
                    .build()
            };
        }
        let action = match self.role {
            Role::Transceiver => self.write(CommandStatus::EsmeRok, sequence, bind!(BindTransceiver)),
            Role::Transmitter => self.write(CommandStatus::EsmeRok, sequence, bind!(BindTransmitter)),
            Role::Receiver => self.write(CommandStatus::EsmeRok, sequence, bind!(BindReceiver)),
        };
        Ok(vec![
            action,
            SessionAction::Timer {
                ms: config.enquire_link_ms,
            },
        ])
    }

    /// The keep-alive is due: a session whose last `enquire_link` is unanswered is dead.
    pub fn timer(&mut self, config: &Config) -> Vec<SessionAction> {
        if self.link_unanswered {
            return vec![SessionAction::close(format!(
                "no answer to enquire_link within {} ms",
                config.enquire_link_ms
            ))];
        }
        self.link_unanswered = true;
        let sequence = self.sequence();
        vec![
            self.write(CommandStatus::EsmeRok, sequence, Pdu::EnquireLink),
            SessionAction::Timer {
                ms: config.enquire_link_ms,
            },
        ]
    }

    /// The gateway wants the session to end.
    pub fn closing(&mut self) -> Vec<SessionAction> {
        self.closing = true;
        self.maybe_unbind()
    }

    fn maybe_unbind(&mut self) -> Vec<SessionAction> {
        if !self.closing || self.unbinding || !self.in_flight.is_empty() {
            return Vec::new();
        }
        self.unbinding = true;
        if !self.bound {
            return vec![SessionAction::close("closed before the bind completed")];
        }
        let sequence = self.sequence();
        vec![self.write(CommandStatus::EsmeRok, sequence, Pdu::Unbind)]
    }

    /// Submits `sms`, in as many parts as its text needs.
    pub fn submit(&mut self, config: &Config, sms: &OutboundSms) -> Result<Vec<SessionAction>, ModuleError> {
        if !self.bound || self.closing || self.role == Role::Receiver {
            return Err(ModuleError::transient("the session is not bound for submits"));
        }
        let (ton, npi, source) = pdu::source(&sms.sender, config.number_source_ton, config.number_source_npi);
        let source = pdu::field("source_addr", &source).map_err(ModuleError::permanent)?;
        let destination =
            pdu::field("destination_addr", sms.to.trim_start_matches('+')).map_err(ModuleError::permanent)?;
        let registered = RegisteredDelivery::from(u8::from(config.delivery_reports));
        let template = SubmitSm::builder()
            .source_addr_ton(ton)
            .source_addr_npi(npi)
            .source_addr(source)
            .dest_addr_ton(Ton::International)
            .dest_addr_npi(Npi::Isdn)
            .destination_addr(destination)
            .esm_class(EsmClass::default())
            .registered_delivery(registered)
            .build();
        self.next_reference = self.next_reference.wrapping_add(1);
        let reference = self.next_reference;
        let text = sms.text.as_str();
        let parts = match config.encoding {
            crate::config::EncodingPolicy::Auto => template
                .multipart(text)
                .reference_u8(reference)
                .fallback(Ucs2::new())
                .build()
                .map_err(|e| ModuleError::permanent(format!("the text cannot be encoded: {e}")))?,
            crate::config::EncodingPolicy::Ucs2 => template
                .multipart(text)
                .reference_u8(reference)
                .ucs2()
                .build()
                .map_err(|e| ModuleError::permanent(format!("the text cannot be encoded: {e}")))?,
        };
        let key = self.next_sms;
        self.next_sms += 1;
        let mut actions = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let sequence = self.sequence();
            self.parts.insert(sequence, (key, index));
            actions.push(self.write(CommandStatus::EsmeRok, sequence, part.clone()));
        }
        self.in_flight.insert(
            key,
            InFlight {
                sms_id: sms.id.to_string(),
                ids: vec![None; parts.len()],
                error: None,
                unanswered: parts.len(),
            },
        );
        if config.rate_per_second > 0 {
            let ms = 1000u64.div_ceil(u64::from(config.rate_per_second)) * parts.len() as u64;
            actions.push(SessionAction::Pause { ms });
        }
        Ok(actions)
    }

    /// Bytes read: every whole PDU in them handled. `parts` is the module's map of
    /// long texts' part ids, filled by answers and read by receipts.
    pub fn received(&mut self, bytes: &[u8], parts: &mut PartIds) -> Result<Vec<SessionAction>, ModuleError> {
        self.buffer.extend_from_slice(bytes);
        let commands = pdu::decode_all(&mut self.buffer).map_err(ModuleError::transient)?;
        let mut actions = Vec::new();
        for command in commands {
            self.command(command, parts, &mut actions);
        }
        actions.extend(self.maybe_unbind());
        Ok(actions)
    }

    fn command(&mut self, command: Command, parts: &mut PartIds, actions: &mut Vec<SessionAction>) {
        let status = command.status();
        let sequence = command.sequence_number();
        // An answer with an error status may come without a body (no PDU): match on
        // the command id, so that it still settles what it answers.
        match command.id() {
            CommandId::BindTransceiverResp | CommandId::BindTransmitterResp | CommandId::BindReceiverResp => {
                if status == CommandStatus::EsmeRok {
                    self.bound = true;
                    if self.role != Role::Receiver {
                        actions.push(SessionAction::Ready);
                    }
                } else {
                    actions.push(SessionAction::close(format!(
                        "bind refused: {}",
                        pdu::status_name(status)
                    )));
                }
            }
            CommandId::SubmitSmResp => {
                let id = match command.pdu() {
                    Some(Pdu::SubmitSmResp(resp)) => resp.message_id().as_str().to_string(),
                    _ => String::new(),
                };
                self.answer(sequence, Answer::Status(status, id), parts, actions);
            }
            CommandId::GenericNack => self.answer(sequence, Answer::GenericNack, parts, actions),
            CommandId::DeliverSm => {
                if let Some(Pdu::DeliverSm(deliver)) = command.pdu() {
                    if let Some(event) = delivery(deliver, parts) {
                        actions.push(SessionAction::event(event));
                    }
                }
                actions.push(self.write(CommandStatus::EsmeRok, sequence, DeliverSmResp::default()));
            }
            CommandId::EnquireLink => {
                actions.push(self.write(CommandStatus::EsmeRok, sequence, Pdu::EnquireLinkResp));
            }
            CommandId::EnquireLinkResp => self.link_unanswered = false,
            CommandId::Unbind => {
                actions.push(self.write(CommandStatus::EsmeRok, sequence, Pdu::UnbindResp));
                actions.push(SessionAction::close("the SMSC unbound"));
            }
            CommandId::UnbindResp => actions.push(SessionAction::close("unbound")),
            _ => {}
        }
    }

    /// A submit's answer: one part of an SMS settled; the SMS once all are.
    fn answer(
        &mut self,
        sequence: u32,
        answer: Answer,
        parts: &mut PartIds,
        actions: &mut Vec<SessionAction>,
    ) {
        let Some((key, part)) = self.parts.remove(&sequence) else {
            return;
        };
        let Some(sms) = self.in_flight.get_mut(&key) else {
            return;
        };
        sms.unanswered -= 1;
        let refused = match answer {
            Answer::Status(CommandStatus::EsmeRok, id) => {
                sms.ids[part] = Some(id);
                None
            }
            Answer::Status(status, _) => Some((
                pdu::status_name(status),
                pdu::is_transient(status),
                status == CommandStatus::EsmeRthrottled,
            )),
            Answer::GenericNack => Some(("generic_nack".to_string(), true, true)),
        };
        if let Some((name, transient, slow_down)) = refused {
            if slow_down {
                // Back off: the SMSC takes no more for now.
                actions.push(SessionAction::Pause { ms: 1000 });
            }
            let message = format!("the SMSC refused the submit: {name}");
            sms.error.get_or_insert(if transient {
                ModuleError::transient(message)
            } else {
                ModuleError::permanent(message)
            });
        }
        if sms.unanswered > 0 {
            return;
        }
        let sms = self.in_flight.remove(&key).expect("present above");
        let result = match sms.error {
            Some(error) => Err(error),
            None => {
                let ids: Vec<String> = sms.ids.into_iter().flatten().collect();
                let first = ids.first().cloned().unwrap_or_default();
                for later in ids.iter().skip(1) {
                    parts.insert(later.clone(), first.clone());
                }
                Ok(first)
            }
        };
        actions.push(SessionAction::sent(sms.sms_id, result));
    }
}

/// A `deliver_sm`: a delivery receipt (naming any part of a long text), or an SMS from
/// a phone.
fn delivery(deliver: &rusmpp::pdus::DeliverSm, parts: &PartIds) -> Option<CallbackEvent> {
    let esm_class = u8::from(deliver.esm_class);
    let coding = u8::from(deliver.data_coding);
    let text = pdu::text(coding, deliver.short_message().as_ref());
    let is_receipt = esm_class & 0x3C == 0x04 || esm_class & 0x3C == 0x10;
    if is_receipt {
        let from_tlv = deliver.tlvs().iter().find_map(|tlv| match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => Some(id.as_str().to_string()),
            _ => None,
        });
        let (id, stat, err) = match pdu::parse_receipt(&text) {
            Some((id, stat, err)) => (from_tlv.unwrap_or(id), stat, err),
            None => (from_tlv?, String::new(), String::new()),
        };
        let id = parts.first_part(id);
        let detail = format!("stat:{stat} err:{err}");
        return Some(CallbackEvent::delivery_report(
            id,
            None,
            pdu::receipt_status(&stat),
            detail,
        ));
    }
    let from = deliver.source_addr.as_str();
    let from = if deliver.source_addr_ton == Ton::International && !from.starts_with('+') {
        format!("+{from}")
    } else {
        from.to_string()
    };
    Some(CallbackEvent::Inbound {
        from: from.into(),
        to: deliver.destination_addr.as_str().into(),
        text: text.into(),
        provider_id: String::new().into(),
    })
}
