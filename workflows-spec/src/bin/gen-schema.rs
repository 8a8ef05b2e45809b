//! Prints the contract's JSON Schema (see `ae_workflows_spec::schema`).

fn main() {
    print!("{}", ae_workflows_spec::schema::contract_text());
}
