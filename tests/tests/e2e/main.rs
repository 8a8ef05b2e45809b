//! The end-to-end suite, as ONE test binary: Temporal, Redis, the worker under test and the
//! test workflow host start once (on first use, see `ae_tests::harness`) and every module
//! shares them. Tests that need a worker configured otherwise start their own through
//! `harness::start_worker`. Run one module with e.g. `cargo test -p ae-tests --test e2e --
//! execute::`.

mod abuse;
mod batch;
mod budget_store;
mod control;
mod demo;
mod deploy;
mod egress;
mod execute;
mod fail_closed;
mod guards;
mod gvisor;
mod inputs;
mod live_output;
mod ops;
mod pool;
mod progressive;
mod python_interop;
mod session;
mod tls;
