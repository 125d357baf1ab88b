//! Tests of the policy module as a whole.
