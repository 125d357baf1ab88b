//! The agent runtime: wires eBPF, proxy, policy, store and admin socket together.
