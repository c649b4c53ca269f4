//! One open SMTP connection, and what is said on it: an e-mail's MAIL FROM, RCPT TO
//! and DATA (in one write when the server announced PIPELINING), RSET after a
//! refusal, QUIT at the end. How the connection was opened is [`super::connect`]'s.
//!
//! lettre's [`AsyncSmtpConnection`] does the framing (one reply read per call, from a
//! buffered reader, so pipelined replies that arrive together are read one by one)
//! and the dot-stuffing of the message; this file decides what to send and when.

use std::{fmt, time::Duration};

use lettre::{
    address::Envelope,
    transport::smtp::{
        client::AsyncSmtpConnection,
        commands::{Data, Ehlo, Mail, Rcpt, Rset},
        extension::{ClientId, Extension, MailBodyParameter, MailParameter},
        response::Response,
    },
};

use super::error::{limit, Severity, SmtpError, Stage};

/// An open, ready connection.
pub struct Session {
    connection: AsyncSmtpConnection,
    /// The EHLO name, for asking the server's extensions again.
    hello: ClientId,
    command_timeout: Duration,
    /// Whether the server announced PIPELINING; learnt before the first e-mail.
    pipelining: Option<bool>,
}

/// Several commands sent in one write (PIPELINING).
struct Pipelined(String);

impl fmt::Display for Pipelined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `text` as the content of DATA (RFC 5321, 4.5.2): a dot that starts a line doubled,
/// then CRLF . CRLF.
fn dot_stuffed(text: &str) -> String {
    let mut wire = String::with_capacity(text.len() + text.len() / 64 + 5);
    let mut rest = text;
    if rest.starts_with('.') {
        wire.push('.');
    }
    while let Some(at) = rest.find("\r\n.") {
        wire.push_str(&rest[..at + 2]);
        wire.push('.');
        rest = &rest[at + 2..];
    }
    wire.push_str(rest);
    wire.push_str("\r\n.\r\n");
    wire
}

impl Session {
    /// A session on a connection that has been greeted (EHLO answered).
    pub(super) fn new(
        connection: AsyncSmtpConnection,
        hello: ClientId,
        command_timeout: Duration,
    ) -> Session {
        Session {
            connection,
            hello,
            command_timeout,
            pipelining: None,
        }
    }

    /// The connection, for the steps of opening it (STARTTLS, AUTH).
    pub(super) fn connection(&mut self) -> &mut AsyncSmtpConnection {
        &mut self.connection
    }

    /// Sends one SMTP command and reads the reply.
    pub async fn command(&mut self, stage: Stage, command: impl fmt::Display) -> Result<Response, SmtpError> {
        let timeout = self.command_timeout;
        limit(stage, timeout, self.connection.command(command)).await
    }

    /// Sends one e-mail: MAIL FROM, RCPT TO for each recipient, DATA. After a refusal
    /// the transaction is reset so the connection can carry the next e-mail.
    pub async fn send(&mut self, envelope: &Envelope, bytes: &[u8]) -> Result<Response, SmtpError> {
        let mut parameters = Vec::new();
        // Domains were turned into punycode when the e-mail was built; a local part in
        // Unicode has no ASCII form, and only a server offering SMTPUTF8 takes it.
        let non_ascii_address = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .find(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if let Some(address) = non_ascii_address {
            if !self
                .connection
                .server_info()
                .supports_feature(Extension::SmtpUtfEight)
            {
                return Err(SmtpError::client(
                    Stage::MailFrom,
                    Severity::Permanent,
                    format!("the server does not offer SMTPUTF8, needed for the address {address}"),
                ));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii()
            && self
                .connection
                .server_info()
                .supports_feature(Extension::EightBitMime)
        {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let result = if self.pipelining().await? {
            self.pipelined_envelope(envelope, parameters, bytes).await
        } else {
            async {
                self.command(Stage::MailFrom, Mail::new(envelope.from().cloned(), parameters))
                    .await?;
                for recipient in envelope.to() {
                    self.command(Stage::RcptTo, Rcpt::new(recipient.clone(), vec![]))
                        .await?;
                }
                self.command(Stage::Data, Data).await?;
                self.content(bytes).await
            }
            .await
        };
        if let Err(error) = &result {
            if error.severity != Severity::Connection && !self.connection.has_broken() {
                let _ = self.command(Stage::Rset, Rset).await;
            }
        }
        result
    }

    /// Whether the server announced PIPELINING. lettre keeps only the EHLO keywords it
    /// knows, so the first e-mail of a connection asks again (one round trip, where
    /// pipelining saves two on every e-mail).
    async fn pipelining(&mut self) -> Result<bool, SmtpError> {
        if let Some(known) = self.pipelining {
            return Ok(known);
        }
        let reply = self
            .command(Stage::MailFrom, Ehlo::new(self.hello.clone()))
            .await?;
        let known = reply.message().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
        });
        self.pipelining = Some(known);
        Ok(known)
    }

    /// MAIL, every RCPT and DATA in one write (RFC 2920), then their replies in order,
    /// then the message. The first refusal is the e-mail's error; every reply is still
    /// read so that the conversation stays in step.
    async fn pipelined_envelope(
        &mut self,
        envelope: &Envelope,
        parameters: Vec<MailParameter>,
        bytes: &[u8],
    ) -> Result<Response, SmtpError> {
        let mut commands = Mail::new(envelope.from().cloned(), parameters).to_string();
        for recipient in envelope.to() {
            commands.push_str(&Rcpt::new(recipient.clone(), vec![]).to_string());
        }
        commands.push_str(&Data.to_string());
        let timeout = self.command_timeout;
        let mut refusal = self.command(Stage::MailFrom, Pipelined(commands)).await.err();
        if refusal
            .as_ref()
            .is_some_and(|e| e.severity == Severity::Connection)
        {
            return Err(refusal.expect("checked"));
        }
        for _ in envelope.to() {
            if let Err(error) = limit(Stage::RcptTo, timeout, self.connection.read_response()).await {
                if error.severity == Severity::Connection {
                    return Err(refusal.unwrap_or(error));
                }
                refusal.get_or_insert(error);
            }
        }
        let data = limit(Stage::Data, timeout, self.connection.read_response()).await;
        match (refusal, data) {
            (None, Ok(_)) => self.content(bytes).await,
            (None, Err(error)) => Err(error),
            (Some(refusal), data) => {
                // DATA was accepted although part of the envelope was not (another
                // recipient was taken): any message now would reach that recipient, so
                // the connection is dropped instead, which discards the transaction.
                if data.is_ok() {
                    self.abort().await;
                }
                Err(refusal)
            }
        }
    }

    /// The message after DATA was accepted, dot-stuffed and ended by `.` in one write
    /// (lettre's own writes the end in a second one), then the server's reply.
    async fn content(&mut self, bytes: &[u8]) -> Result<Response, SmtpError> {
        let timeout = self.command_timeout;
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                limit(
                    Stage::Data,
                    timeout,
                    self.connection.command(Pipelined(dot_stuffed(text))),
                )
                .await
            }
            // Built e-mails are text; anything else goes lettre's way.
            Err(_) => limit(Stage::Data, timeout, self.connection.message(bytes)).await,
        }
    }

    /// Ends the session politely.
    pub async fn quit(mut self) -> Result<Response, SmtpError> {
        let timeout = self.command_timeout;
        limit(Stage::Quit, timeout, self.connection.quit()).await
    }

    /// Closes the connection without waiting for anything.
    pub async fn abort(&mut self) {
        let _ = tokio::time::timeout(self.command_timeout, self.connection.abort()).await;
    }

    /// Whether the connection can carry another command.
    pub fn is_usable(&self) -> bool {
        !self.connection.has_broken()
    }
}

/// The session against a scripted server, byte for byte, as lettre tests its own
/// protocol code: the gateway's end of an in-memory stream goes through lettre's real
/// connection, and the server's end plays a script of what it must read and what it
/// answers. Every write the gateway makes is kept, so a test can tell what went out
/// in one write.
#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        io,
        pin::Pin,
        sync::{Arc, Mutex},
        task::{Context, Poll},
    };

    use lettre::transport::smtp::client::AsyncTokioStream;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

    use super::*;
    use crate::email::error::reply_text;

    /// What the gateway writes, one entry per write.
    type Writes = Arc<Mutex<Vec<Vec<u8>>>>;

    /// The gateway's end of an in-memory connection, keeping every write.
    #[derive(Debug)]
    struct Recorded {
        stream: DuplexStream,
        writes: Writes,
    }

    impl AsyncRead for Recorded {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Recorded {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let written = Pin::new(&mut self.stream).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = written {
                self.writes.lock().unwrap().push(buf[..n].to_vec());
            }
            written
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_shutdown(cx)
        }
    }

    impl AsyncTokioStream for Recorded {
        fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
            Err(io::Error::other("an in-memory stream has no address"))
        }
    }

    /// One step of the server's script.
    enum Peer {
        /// The server writes this.
        Says(&'static str),
        /// The gateway must have written exactly this next (in one write or several).
        Expects(&'static str),
        /// The server closes its side, as a server that drops the connection.
        HangsUp,
    }
    use Peer::{Expects, HangsUp, Says};

    const GREETING: &str = "220 mx.test ESMTP\r\n";
    const EHLO: &str = "EHLO gateway.test\r\n";
    const EHLO_PLAIN: &str = "250-mx.test\r\n250-8BITMIME\r\n250 SIZE 10240000\r\n";
    const EHLO_PIPELINING: &str = "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10240000\r\n";
    /// A message whose second line starts with a dot.
    const MESSAGE: &[u8] = b"Subject: x\r\n\r\n.hidden\r\nHello\r\n";
    /// The same on the wire: the dot doubled, then the end of data.
    const MESSAGE_ON_THE_WIRE: &str = "Subject: x\r\n\r\n..hidden\r\nHello\r\n\r\n.\r\n";

    fn hello() -> ClientId {
        ClientId::Domain("gateway.test".into())
    }

    fn envelope(to: &[&str]) -> Envelope {
        Envelope::new(
            Some("a@x.test".parse().unwrap()),
            to.iter().map(|a| a.parse().unwrap()).collect(),
        )
        .unwrap()
    }

    /// Reads what the gateway wrote next into `unread`; 0 once it closed.
    async fn read_more(server: &mut DuplexStream, unread: &mut Vec<u8>) -> usize {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), server.read(&mut chunk))
            .await
            .expect("the gateway went silent")
            .expect("read from the gateway");
        unread.extend_from_slice(&chunk[..n]);
        n
    }

    /// Plays `script` as the server, then checks the gateway wrote nothing more before
    /// it closed the connection.
    async fn play(mut server: DuplexStream, script: Vec<Peer>) {
        let mut unread = Vec::new();
        for step in script {
            match step {
                Says(text) => server.write_all(text.as_bytes()).await.unwrap(),
                Expects(text) => {
                    while unread.len() < text.len() {
                        if read_more(&mut server, &mut unread).await == 0 {
                            panic!(
                                "the gateway closed the connection; expected {text:?}, got {:?}",
                                String::from_utf8_lossy(&unread)
                            );
                        }
                    }
                    let got: Vec<u8> = unread.drain(..text.len()).collect();
                    assert_eq!(String::from_utf8_lossy(&got), text);
                }
                HangsUp => server.shutdown().await.unwrap(),
            }
        }
        while read_more(&mut server, &mut unread).await > 0 {}
        assert_eq!(
            String::from_utf8_lossy(&unread),
            "",
            "the gateway wrote what the script did not expect"
        );
    }

    /// Greets the gateway as `script` says, runs `client` on the session, and returns
    /// what it returned with every write the gateway made.
    async fn converse<T, F: Future<Output = T>>(
        script: Vec<Peer>,
        client: impl FnOnce(Session) -> F,
    ) -> (T, Vec<String>) {
        let (gateway_end, server_end) = tokio::io::duplex(1 << 20);
        let writes = Writes::default();
        let stream = Recorded {
            stream: gateway_end,
            writes: writes.clone(),
        };
        let gateway = async {
            let connection = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello())
                .await
                .expect("the greeting and EHLO");
            client(Session::new(connection, hello(), Duration::from_secs(5))).await
        };
        let ((), out) = tokio::join!(play(server_end, script), gateway);
        let writes = writes.lock().unwrap();
        (
            out,
            writes
                .iter()
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect(),
        )
    }

    #[test]
    fn dots_that_start_a_line_are_doubled_as_lettre_does() {
        for (text, wire) in [
            ("Hello", "Hello\r\n.\r\n"),
            (".first\r\n", "..first\r\n\r\n.\r\n"),
            ("a\r\n.\r\n..b\r\n.", "a\r\n..\r\n...b\r\n..\r\n.\r\n"),
            ("no.dot\r\nat.start", "no.dot\r\nat.start\r\n.\r\n"),
            ("", "\r\n.\r\n"),
        ] {
            assert_eq!(dot_stuffed(text), wire, "{text:?}");
        }
    }

    #[tokio::test]
    async fn with_pipelining_mail_rcpt_and_data_go_in_one_write() {
        let script = vec![
            Says(GREETING),
            Expects(EHLO),
            Says(EHLO_PIPELINING),
            // The first e-mail asks for the extensions lettre does not keep.
            Expects(EHLO),
            Says(EHLO_PIPELINING),
            Expects("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"),
            Says("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),
            Expects(MESSAGE_ON_THE_WIRE),
            Says("250 2.0.0 Ok: queued as 1\r\n"),
            Expects("MAIL FROM:<a@x.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n"),
            Says("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go on\r\n"),
            Expects(MESSAGE_ON_THE_WIRE),
            Says("250 2.0.0 Ok: queued as 2\r\n"),
            Expects("QUIT\r\n"),
            Says("221 2.0.0 Bye\r\n"),
        ];
        let (replies, writes) = converse(script, |mut session| async move {
            let first = session.send(&envelope(&["b@y.test", "c@y.test"]), MESSAGE).await;
            let second = session.send(&envelope(&["d@y.test"]), MESSAGE).await;
            session.quit().await.unwrap();
            (first.unwrap(), second.unwrap())
        })
        .await;
        assert_eq!(reply_text(&replies.0), "250 2.0.0 Ok: queued as 1");
        assert_eq!(reply_text(&replies.1), "250 2.0.0 Ok: queued as 2");
        assert!(
            writes.contains(
                &"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n".into()
            ),
            "the envelope goes in one write: {writes:?}"
        );
        assert!(
            writes.contains(&"MAIL FROM:<a@x.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n".into()),
            "and so does the next e-mail's, without asking EHLO again: {writes:?}"
        );
        assert!(
            writes.contains(&MESSAGE_ON_THE_WIRE.into()),
            "the message and its end go in one write: {writes:?}"
        );
    }

    #[tokio::test]
    async fn without_pipelining_each_command_waits_for_its_reply() {
        let script = vec![
            Says(GREETING),
            Expects(EHLO),
            Says(EHLO_PLAIN),
            Expects(EHLO),
            Says(EHLO_PLAIN),
            Expects("MAIL FROM:<a@x.test>\r\n"),
            Says("250 2.1.0 Ok\r\n"),
            Expects("RCPT TO:<b@y.test>\r\n"),
            Says("250 2.1.5 Ok\r\n"),
            Expects("DATA\r\n"),
            Says("354 go on\r\n"),
            Expects(MESSAGE_ON_THE_WIRE),
            Says("250 2.0.0 Ok: queued\r\n"),
        ];
        let (reply, writes) = converse(script, |mut session| async move {
            session.send(&envelope(&["b@y.test"]), MESSAGE).await
        })
        .await;
        reply.unwrap();
        let envelope_writes: Vec<&String> = writes
            .iter()
            .filter(|w| w.starts_with("MAIL") || w.starts_with("RCPT") || w.starts_with("DATA"))
            .collect();
        assert_eq!(
            envelope_writes,
            ["MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@y.test>\r\n", "DATA\r\n"],
            "one command per write"
        );
    }

    #[tokio::test]
    async fn a_550_at_rcpt_fails_the_email_for_good_and_resets_the_transaction() {
        let script = vec![
            Says(GREETING),
            Expects(EHLO),
            Says(EHLO_PLAIN),
            Expects(EHLO),
            Says(EHLO_PLAIN),
            Expects("MAIL FROM:<a@x.test>\r\n"),
            Says("250 2.1.0 Ok\r\n"),
            Expects("RCPT TO:<nobody@y.test>\r\n"),
            Says("550 5.1.1 <nobody@y.test>: Recipient address rejected: User unknown\r\n"),
            Expects("RSET\r\n"),
            Says("250 2.0.0 Ok\r\n"),
        ];
        let ((error, usable), _) = converse(script, |mut session| async move {
            let error = session
                .send(&envelope(&["nobody@y.test"]), MESSAGE)
                .await
                .unwrap_err();
            (error, session.is_usable())
        })
        .await;
        assert_eq!(error.stage, Stage::RcptTo);
        assert_eq!(error.severity, Severity::Permanent);
        assert_eq!(error.code, Some(550));
        assert!(error.text.contains("User unknown"), "{error}");
        assert!(usable, "the connection carries the next e-mail");
    }

    #[tokio::test]
    async fn a_multi_line_refusal_in_a_pipeline_keeps_the_conversation_in_step() {
        let script = vec![
            Says(GREETING),
            Expects(EHLO),
            Says(EHLO_PIPELINING),
            Expects(EHLO),
            Says(EHLO_PIPELINING),
            Expects("MAIL FROM:<a@x.test>\r\nRCPT TO:<nobody@y.test>\r\nDATA\r\n"),
            Says(concat!(
                "250 2.1.0 Ok\r\n",
                "550-5.1.1 <nobody@y.test>: Recipient address rejected:\r\n",
                "550 5.1.1 User unknown in virtual mailbox table\r\n",
                "554 5.5.1 Error: no valid recipients\r\n",
            )),
            Expects("RSET\r\n"),
            Says("250 2.0.0 Ok\r\n"),
            Expects("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
            Says("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go on\r\n"),
            Expects(MESSAGE_ON_THE_WIRE),
            Says("250-2.0.0 Ok\r\n250 2.0.0 queued as 7\r\n"),
        ];
        let ((refused, sent), _) = converse(script, |mut session| async move {
            let refused = session.send(&envelope(&["nobody@y.test"]), MESSAGE).await;
            let sent = session.send(&envelope(&["b@y.test"]), MESSAGE).await;
            (refused.unwrap_err(), sent.unwrap())
        })
        .await;
        assert_eq!((refused.stage, refused.code), (Stage::RcptTo, Some(550)));
        assert!(
            refused.text.contains("Recipient address rejected") && refused.text.contains("virtual mailbox"),
            "both lines of the reply: {refused}"
        );
        assert_eq!(reply_text(&sent), "250 2.0.0 Ok 2.0.0 queued as 7");
    }

    #[tokio::test]
    async fn a_non_ascii_local_part_goes_with_smtputf8_when_offered() {
        let script = vec![
            Says(GREETING),
            Expects(EHLO),
            Says("250-mx.test\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n"),
            Expects(EHLO),
            Says("250-mx.test\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n"),
            Expects("MAIL FROM:<a@x.test> SMTPUTF8\r\n"),
            Says("250 2.1.0 Ok\r\n"),
            Expects("RCPT TO:<jürgen@y.test>\r\n"),
            Says("250 2.1.5 Ok\r\n"),
            Expects("DATA\r\n"),
            Says("354 go on\r\n"),
            Expects(MESSAGE_ON_THE_WIRE),
            Says("250 2.0.0 Ok\r\n"),
        ];
        let (reply, _) = converse(script, |mut session| async move {
            session.send(&envelope(&["jürgen@y.test"]), MESSAGE).await
        })
        .await;
        reply.unwrap();
    }

    #[tokio::test]
    async fn a_non_ascii_local_part_fails_for_good_without_smtputf8_and_sends_nothing() {
        let script = vec![Says(GREETING), Expects(EHLO), Says(EHLO_PIPELINING)];
        let (error, _) = converse(script, |mut session| async move {
            session
                .send(&envelope(&["jürgen@y.test"]), MESSAGE)
                .await
                .unwrap_err()
        })
        .await;
        assert_eq!(error.severity, Severity::Permanent);
        assert_eq!(
            error.text,
            "the server does not offer SMTPUTF8, needed for the address jürgen@y.test"
        );
    }

    #[tokio::test]
    async fn with_pipelining_one_refused_recipient_of_two_closes_the_connection_before_the_message() {
        let script = vec![
            Says(GREETING),
            Expects(EHLO),
            Says(EHLO_PIPELINING),
            Expects(EHLO),
            Says(EHLO_PIPELINING),
            Expects("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<nobody@y.test>\r\nDATA\r\n"),
            Says("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 User unknown\r\n354 go on\r\n"),
            // lettre's abort says QUIT, which the server in DATA takes as message text;
            // the connection then closes without the final dot, so nothing is delivered.
            Expects("QUIT\r\n"),
            HangsUp,
        ];
        let ((error, usable), writes) = converse(script, |mut session| async move {
            let error = session
                .send(&envelope(&["b@y.test", "nobody@y.test"]), MESSAGE)
                .await
                .unwrap_err();
            (error, session.is_usable())
        })
        .await;
        assert_eq!((error.stage, error.code), (Stage::RcptTo, Some(550)));
        assert!(!usable);
        assert!(
            !writes.iter().any(|w| w.contains("hidden")),
            "no byte of the message was sent: {writes:?}"
        );
    }
}
