//! Tests of the simulated venue.
