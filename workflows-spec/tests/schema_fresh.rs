//! The checked-in JSON Schema must match the Rust types.

#[test]
fn checked_in_schema_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/contract.schema.json");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let fresh = ae_workflows_spec::schema::contract_text();
    assert!(
        on_disk == fresh,
        "workflows-spec/schema/contract.schema.json is stale: regenerate it with\n  cargo run -p ae-workflows-spec --bin gen-schema > workflows-spec/schema/contract.schema.json"
    );
}

#[test]
fn schema_names_every_activity_signal_and_failure() {
    let s = ae_workflows_spec::schema::contract();
    for a in [
        "safeExecuteCode",
        "safeExecuteBatch",
        "deployWithApproval",
        "openSandbox",
        "closeSandbox",
    ] {
        assert!(s["activities"][a]["input"].is_object(), "{a}");
    }
    let wf = &s["workflows"]["buildAndDeployWorkflow"];
    assert!(wf["signals"]["approveDeployment"].is_object());
    assert!(wf["signals"]["rejectDeployment"].is_object());
    assert!(wf["queries"]["pendingApproval"].is_object());
    assert_eq!(s["failureTypes"].as_array().unwrap().len(), 13);
    // Required fields are required in the schema too.
    let text = s.to_string();
    assert!(text.contains("\"runId\""));
}
