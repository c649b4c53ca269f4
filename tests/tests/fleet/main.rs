//! Several gateways on one PostgreSQL database (contract, section 7; issue 10): real
//! `gateway serve` processes, a real PostgreSQL (`e2e::postgres`) and a real SMTP server
//! (aiosmtpd, `e2e::smtp`). Every count about e-mail is taken from the SMTP server's
//! own record; what each gateway did, from its API and `/metrics` (the server cannot
//! tell the gateways apart: all greet with the machine's name, and `X-Gateway-Id` is
//! the message's id).
//!
//! - [`mailing`]: 10,000 recipients at 100 / 5 over three gateways, then the same with
//!   one of them killed in the middle;
//! - [`sms`]: SMS posted round-robin to three gateways, one killed mid-burst;
//! - [`limits`]: *SMTP threads* lowered from 5 to 2 during a mailing, gateway by gateway;
//! - [`migrate`]: a SQLite queue moved to PostgreSQL with `gateway store migrate`.
//!
//! The tests take turns ([`setup::one_at_a_time`]): each runs three gateways, and
//! several at once on a small machine would measure the machine, not the fleet.
//!
//! ```text
//! cargo test -p e2e --test fleet
//! ```

mod limits;
mod mailing;
mod migrate;
mod record;
mod setup;
mod sms;
