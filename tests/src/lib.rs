//! End-to-end test support: the shared environment ([`harness`]) and the generic test workflow
//! ([`workflows`]) that schedules activities by name, exactly as a TypeScript or Python workflow
//! would. The tests themselves are in `tests/tests/`.

pub mod harness;
pub mod tiers;
pub mod tls;
pub mod workflows;
