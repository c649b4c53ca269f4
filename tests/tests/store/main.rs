//! The queue store's behaviour (`gateway::store::Store`), one suite for both backends.
//!
//! Every test here is written once, as an async function taking the store, and runs
//! twice: as `sqlite::NAME` on an embedded SQLite file and as `postgres::NAME` on a
//! database of its own on the test process's PostgreSQL server (`e2e::postgres`). Both
//! stores are opened with `gateway::server::open_store`, exactly as `gateway serve`
//! opens them, so what holds here holds for a gateway on either `storage.url`.
//!
//! Tests that restart the store take the [`Backend`](backend::Backend) instead and open
//! it again: the same file for SQLite, the same database (a restarted or a second
//! gateway) for PostgreSQL. Where the two differ by design, the test says what each
//! one must do.
//!
//! The fleet's side of the store (heartbeats, the burial of dead gateways, SMTP slots)
//! exists only on PostgreSQL, shared by several gateways: its tests are `fleet::NAME`.
//!
//! What only concerns SQLite's file (WAL mode, query plans, group commit, migrating old
//! files, surviving `kill -9`) is tested beside it, in `gateway/src/store/sqlite/tests.rs`.
//!
//! ```text
//! cargo test -p e2e --test store sqlite::     # one backend
//! cargo test -p e2e --test store fleet::      # the fleet (PostgreSQL)
//! ```

mod backend;
mod console_sessions;
mod fixtures;
mod fleet;
mod idempotency;
mod inbound;
mod leases;
mod mailings;
mod messages;
mod outcomes;
mod postgres_events;
mod postgres_schema;
mod quota;
mod reports;
mod restart;
mod retention;
mod settings_versions;
mod suppressions;

/// For each listed test, generates `sqlite::NAME` and `postgres::NAME`, each on a store
/// of its own. `store module::NAME` is called with the opened store; `backend
/// module::NAME` with the backend, to open it (again) itself.
macro_rules! on_both_backends {
    ($($takes:ident $module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            on_both_backends!(@tests sqlite; $($takes $module::$name),*);
        }
        mod postgres {
            on_both_backends!(@tests postgres; $($takes $module::$name),*);
        }
    };
    (@tests $backend:ident; $($takes:ident $module:ident :: $name:ident),*) => {
        $(
            // Several threads, as in the gateway: concurrent callers really are concurrent.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = crate::backend::Backend::$backend();
                on_both_backends!(@run $takes backend crate::$module::$name);
            }
        )*
    };
    (@run store $backend:ident $test:path) => {
        $test($backend.open().await).await
    };
    (@run backend $backend:ident $test:path) => {
        $test(&$backend).await
    };
}

on_both_backends! {
    store messages::enqueued_message_reads_back_queued,
    store messages::ids_sort_by_creation,
    store messages::five_hundred_concurrent_enqueues_are_all_stored,

    store idempotency::same_idempotency_key_twice_stores_one_message,
    store idempotency::same_idempotency_key_concurrently_stores_one_message,
    store idempotency::an_idempotency_key_reused_for_another_request_is_refused,

    store leases::lease_takes_the_oldest_due_first_and_only_its_channel,
    store leases::concurrent_leasers_never_share_a_message,
    store leases::expired_lease_is_taken_over_and_the_first_owner_loses,
    store leases::queue_depth_counts_what_a_lease_would_pick,
    store leases::release_leases_requeues_and_uncounts_the_attempt,
    store leases::expire_all_leases_ends_every_lease_and_keeps_its_attempt,

    store outcomes::settle_answers_each_settlement_in_order,
    store outcomes::a_late_outcome_of_an_expired_lease_retaken_by_the_same_gateway_is_refused,
    store outcomes::retry_waits_for_its_due_time_and_failure_is_final,

    backend restart::after_a_crash_the_dead_gateways_lease_is_void_on_sqlite_and_held_on_postgres,
    backend restart::everything_survives_a_restart,

    store mailings::mailing_of_100k_recipients_in_one_call,
    store mailings::a_mailing_without_recipients_is_refused,
    store mailings::a_message_of_an_unknown_mailing_is_refused_naming_it,
    store mailings::recent_mailings_are_listed_newest_first_with_their_counts,

    store reports::delivery_report_moves_sent_to_delivered,
    store reports::a_report_before_the_send_is_recorded_is_held_and_applied_with_the_outcome,
    store reports::a_report_naming_the_message_id_is_matched_whatever_its_provider_id,
    store reports::a_stale_outcome_takes_no_held_report,

    store inbound::inbound_sms_are_kept_once_listed_newest_first_and_forwarded_until_done,

    store retention::finished_rows_older_than_the_retention_are_purged_in_batches_and_the_rest_kept,

    store settings_versions::settings_versions_count_up_and_read_back_whole,
    store settings_versions::a_save_on_a_stale_version_is_refused_and_saves_nothing,
    store settings_versions::concurrent_saves_on_one_version_save_exactly_one,

    store console_sessions::a_console_session_is_kept_touched_and_ended,
    store console_sessions::keeping_a_session_sweeps_those_that_ended,
    store suppressions::an_address_is_listed_once_with_its_first_reason_and_removed,
    store suppressions::the_list_pages_in_address_order,
    store suppressions::a_mailing_skips_suppressed_recipients_and_counts_them,
    backend suppressions::the_unsubscribe_secret_is_made_once_and_read_alike_after_a_restart,

    backend quota::a_full_window_refuses_until_its_oldest_send_ages_out_across_a_restart,
}
