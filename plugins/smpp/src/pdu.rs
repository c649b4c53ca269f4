//! PDUs on the wire, with rusmpp: a command as bytes, bytes read as commands (a PDU may
//! arrive in pieces, or several at once), addresses, statuses by name, receipts and
//! the text of a `deliver_sm`.

use plugin_api::DeliveryStatus;
use rusmpp::{
    decode::DecodeWithLength,
    encode::{Encode, Length},
    types::COctetString,
    values::{Npi, Ton},
    Command, CommandStatus,
};

/// The largest PDU accepted; a longer one means the stream is not SMPP.
const MAX_PDU: usize = 64 * 1024;

/// `command` as the bytes that go on the wire, its length first.
pub fn encode(command: &Command) -> Vec<u8> {
    let length = 4 + command.length();
    let mut bytes = vec![0u8; length];
    bytes[..4].copy_from_slice(&(length as u32).to_be_bytes());
    command.encode(&mut bytes[4..]);
    bytes
}

/// Takes every whole PDU off the front of `buffer`. An error means the stream cannot
/// be read any further (the session must end).
pub fn decode_all(buffer: &mut Vec<u8>) -> Result<Vec<Command>, String> {
    let mut commands = Vec::new();
    loop {
        if buffer.len() < 4 {
            return Ok(commands);
        }
        let length = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
        if !(16..=MAX_PDU).contains(&length) {
            return Err(format!("a PDU of {length} bytes: not SMPP"));
        }
        if buffer.len() < length {
            return Ok(commands);
        }
        let mut body = rusmpp_bytes(&buffer[4..length]);
        buffer.drain(..length);
        let (command, _) =
            Command::decode(&mut body, length - 4).map_err(|e| format!("a PDU that cannot be read: {e}"))?;
        commands.push(command);
    }
}

fn rusmpp_bytes(slice: &[u8]) -> bytes::BytesMut {
    bytes::BytesMut::from(slice)
}

/// A C-octet string field, or an error naming it.
pub fn field<const MIN: usize, const MAX: usize>(
    name: &str,
    value: &str,
) -> Result<COctetString<MIN, MAX>, String> {
    COctetString::from_vec(format!("{value}\0").into_bytes())
        .map_err(|e| format!("{name} `{value}` does not fit SMPP: {e}"))
}

/// A sender's TON and NPI: letters make an alphanumeric sender (TON 5, NPI 0); a number
/// gets the configured ones (international, ISDN by default) and loses its `+`.
pub fn source(sender: &str, number_ton: u8, number_npi: u8) -> (Ton, Npi, String) {
    if sender.chars().any(|c| c.is_ascii_alphabetic()) {
        (Ton::Alphanumeric, Npi::Unknown, sender.to_string())
    } else {
        (
            Ton::from(number_ton),
            Npi::from(number_npi),
            sender.trim_start_matches('+').to_string(),
        )
    }
}

/// A status as the SMPP specification names it (`ESME_RTHROTTLED`).
pub fn status_name(status: CommandStatus) -> String {
    let raw: u32 = status.into();
    match status {
        CommandStatus::Other(_) => format!("status 0x{raw:08X}"),
        known => {
            let debug = format!("{known:?}").to_uppercase();
            match debug.strip_prefix("ESME") {
                Some(rest) => format!("ESME_{rest}"),
                None => debug,
            }
        }
    }
}

/// Whether the SMSC may take the same submit later: a full queue, throttling, a
/// system error.
pub fn is_transient(status: CommandStatus) -> bool {
    matches!(
        status,
        CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful | CommandStatus::EsmeRsyserr
    )
}

/// A delivery receipt's text, `id:… sub:… dlvrd:… submit date:… done date:… stat:…
/// err:… text:…`: the message id, the state and the error code.
pub fn parse_receipt(text: &str) -> Option<(String, String, String)> {
    let field = |key: &str| {
        let start = text.find(key)? + key.len();
        let rest = &text[start..];
        Some(rest.split_whitespace().next().unwrap_or("").to_string())
    };
    let id = field("id:")?;
    let stat = field("stat:").unwrap_or_default();
    let err = field("err:").unwrap_or_default();
    Some((id, stat, err))
}

/// What a receipt's `stat` means for the message.
pub fn receipt_status(stat: &str) -> DeliveryStatus {
    match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" => DeliveryStatus::DELIVERED,
        "ENROUTE" | "ACCEPTD" => DeliveryStatus::IN_PROGRESS,
        _ => DeliveryStatus::UNDELIVERED,
    }
}

/// The text of a short message in `data_coding`: GSM 7-bit (unpacked, one septet a
/// byte, as SMPP carries it), Latin-1 or UCS-2; anything else as UTF-8, lossily.
pub fn text(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        0 | 1 => gsm7_to_string(bytes),
        3 => bytes.iter().map(|&b| b as char).collect(),
        8 => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|p| u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(bytes).to_string(),
    }
}

/// GSM 03.38's default alphabet, by septet.
const GSM7: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', 'Δ', '_', 'Φ', 'Γ',
    'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', ' ', '!', '"', '#', '¤', '%', '&', '\'',
    '(', ')', '*', '+', ',', '-', '.', '/', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<',
    '=', '>', '?', '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q',
    'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', '¿', 'a', 'b', 'c', 'd', 'e', 'f',
    'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä',
    'ö', 'ñ', 'ü', 'à',
];

fn gsm7_to_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut escaped = false;
    for &byte in bytes {
        let septet = byte & 0x7f;
        if escaped {
            escaped = false;
            out.push(match septet {
                0x0A => '\u{c}',
                0x14 => '^',
                0x28 => '{',
                0x29 => '}',
                0x2F => '\\',
                0x3C => '[',
                0x3D => '~',
                0x3E => ']',
                0x40 => '|',
                0x65 => '€',
                other => GSM7[other as usize],
            });
        } else if septet == 0x1b {
            escaped = true;
        } else {
            out.push(GSM7[septet as usize]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::Pdu;

    #[test]
    fn pdus_split_or_joined_on_the_wire_come_out_whole() {
        let one = encode(&Command::new(CommandStatus::EsmeRok, 7, Pdu::EnquireLink));
        assert_eq!(one, [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7]);
        let mut buffer = one[..10].to_vec();
        assert!(decode_all(&mut buffer).unwrap().is_empty());
        buffer.extend_from_slice(&one[10..]);
        buffer.extend_from_slice(&one);
        let commands = decode_all(&mut buffer).unwrap();
        assert_eq!(commands.len(), 2);
        assert_eq!(commands[1].sequence_number(), 7);
        assert!(buffer.is_empty());
    }

    #[test]
    fn statuses_have_their_specification_names() {
        assert_eq!(status_name(CommandStatus::EsmeRthrottled), "ESME_RTHROTTLED");
        assert_eq!(status_name(CommandStatus::EsmeRinvpaswd), "ESME_RINVPASWD");
        assert!(is_transient(CommandStatus::EsmeRmsgqful));
        assert!(!is_transient(CommandStatus::EsmeRinvdstadr));
    }

    #[test]
    fn a_receipt_text_gives_its_id_state_and_error() {
        let text = "id:abc123 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:UNDELIV err:034 text:hi";
        assert_eq!(
            parse_receipt(text),
            Some(("abc123".into(), "UNDELIV".into(), "034".into()))
        );
        assert_eq!(receipt_status("DELIVRD"), DeliveryStatus::DELIVERED);
        assert_eq!(receipt_status("EXPIRED"), DeliveryStatus::UNDELIVERED);
    }

    #[test]
    fn senders_get_their_ton() {
        assert_eq!(source("ACME", 1, 1).0, Ton::Alphanumeric);
        let (ton, npi, addr) = source("+447911123456", 1, 1);
        assert_eq!(
            (ton, npi, addr.as_str()),
            (Ton::International, Npi::Isdn, "447911123456")
        );
        assert_eq!(text(0, &[0x48, 0x69, 0x1b, 0x65]), "Hi€");
        assert_eq!(text(8, &[0x04, 0x1f]), "П");
    }
}
