//! The cost of one call into a loaded module, beside the same function called
//! directly, in the same run.
//!
//! `cargo bench -p e2e --bench module_call`
//!
//! - direct: `Echo::send` from the echo module's rlib, an ordinary Rust call;
//! - through the ABI: the same code in `libecho.so` loaded from disk, called through
//!   the `Provider` trait object (vtable call, `catch_unwind` guard, `NonExhaustive`
//!   wrapping of the answer);
//! - through the gateway: `Module::send`, which adds the hop to the module's own call
//!   thread and a time limit (what every real send pays), one call at a time (the
//!   latency of one call), and with 64 calls in flight as the SMS worker makes them
//!   (the cost per call under load), and in batches of 64 as the SMS worker starts a
//!   leased batch (`Module::send_batch`: one hop for the batch).
//!
//! Each figure is the median of 9 rounds; the echo module does no I/O.

use std::{hint::black_box, time::Instant};

use echo::Echo;
use gateway::modules::{self, Module, ModuleName};
use plugin_api::{Host, OutboundSms, SmsModule};

const ROUNDS: usize = 9;

fn median_ns_per_call(calls: usize, mut round: impl FnMut(usize)) -> f64 {
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            round(calls);
            start.elapsed().as_nanos() as f64 / calls as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[ROUNDS / 2]
}

fn main() {
    let sms = OutboundSms {
        id: "01JBENCH0000000000000000".into(),
        to: "+447911123456".into(),
        sender: "ACME".into(),
        text: "Your code is 123456".into(),
        attempt: 1,
    };
    let dir = e2e::build_dir();
    let library = modules::load(dir, &ModuleName::new("echo").unwrap()).expect("load libecho");

    let direct = Echo::new("", Host::discard()).unwrap();
    let direct_ns = median_ns_per_call(1_000_000, |n| {
        for _ in 0..n {
            black_box(direct.send(black_box(&sms)).unwrap());
        }
    });

    let provider = library.start("").expect("start echo");
    let abi_ns = median_ns_per_call(1_000_000, |n| {
        for _ in 0..n {
            black_box(provider.send(black_box(&sms)).unwrap());
        }
    });

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let module = Module::start(&library, "", std::time::Duration::from_secs(5)).unwrap();
    let gateway_ns = median_ns_per_call(20_000, |n| {
        runtime.block_on(async {
            for _ in 0..n {
                black_box(module.send(sms.clone()).await.unwrap());
            }
        })
    });

    const IN_FLIGHT: usize = 64;
    let pipelined_ns = median_ns_per_call(64_000, |n| {
        runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..IN_FLIGHT {
                let (module, sms) = (module.clone(), sms.clone());
                tasks.spawn(async move {
                    for _ in 0..n / IN_FLIGHT {
                        black_box(module.send(sms.clone()).await.unwrap());
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    });

    let batched_ns = median_ns_per_call(64_000, |n| {
        runtime.block_on(async {
            for _ in 0..n / IN_FLIGHT {
                let batch = vec![sms.clone(); IN_FLIGHT];
                for answer in module.send_batch(batch).await {
                    black_box(answer.unwrap().unwrap());
                }
            }
        })
    });

    println!("module call cost, echo module (no I/O), median of {ROUNDS} rounds");
    println!("{:<44} {:>10}", "case", "ns/call");
    println!(
        "{:<44} {:>10.1}",
        "direct Rust call (reference, same run)", direct_ns
    );
    println!(
        "{:<44} {:>10.1}",
        "through the ABI (libecho.so from disk)", abi_ns
    );
    println!(
        "{:<44} {:>10.1}",
        "through the gateway, one call at a time", gateway_ns
    );
    println!(
        "{:<44} {:>10.1}",
        "through the gateway, 64 calls in flight", pipelined_ns
    );
    println!(
        "{:<44} {:>10.1}",
        "through the gateway, batches of 64", batched_ns
    );
    println!();
    println!(
        "ABI overhead: {:+.1} ns per call ({:.2}x the direct call); aim: under 1000 ns more",
        abi_ns - direct_ns,
        abi_ns / direct_ns
    );
    println!(
        "gateway dispatch overhead: {:+.1} ns for one call alone, {:+.1} ns per call with {IN_FLIGHT} in flight, {:+.1} ns per call in batches of {IN_FLIGHT} (as the SMS worker calls); aim: under 2000 ns",
        gateway_ns - direct_ns,
        pipelined_ns - direct_ns,
        batched_ns - direct_ns,
    );
}
