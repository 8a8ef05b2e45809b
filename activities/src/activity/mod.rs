//! The three activities, one file each, written as the pipeline's steps in order
//! (see `pipeline`): [`execute`] (`safeExecuteCode`), [`batch`] (`safeExecuteBatch`),
//! [`deploy`] (`deployWithApproval`, with its own gates in [`approve`]).

pub mod approve;
pub mod batch;
pub mod deploy;
pub mod execute;
