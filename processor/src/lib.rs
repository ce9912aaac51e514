//! The dataflow engine. Empty until the processor issue lands; see docs/design.md.
