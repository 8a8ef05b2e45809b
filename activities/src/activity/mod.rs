//! The activities, one file each, written as the pipeline's steps in order
//! (see `pipeline`): [`execute`] (`safeExecuteCode`), [`batch`] (`safeExecuteBatch`),
//! [`deploy`] (`deployWithApproval`, with its own gates in [`approve`]), [`session`]
//! (`openSandbox`, `closeSandbox`, and running the first two in an open session); beside them
//! [`event`] (`recordDeploymentEvent`, audit and alerts for workflows; runs nothing).

pub mod approve;
pub mod batch;
pub mod deploy;
pub mod event;
pub mod execute;
pub mod session;
