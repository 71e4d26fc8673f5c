//! `eue-sim`: plays PacketCable devices and clients against pktc-kdc.
fn main() {}
