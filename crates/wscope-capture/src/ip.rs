//! IP and TCP headers: from an IP packet to a TCP segment.
//!
//! Headers are read with etherparse, leniently: a packet cut short by the
//! capture's snap length still yields its segment, with the bytes that
//! were not captured counted (`missing`) so reassembly reports them as a
//! gap instead of taking garbage. IPv4 and IPv6 fragments are put back
//! together (etherparse's pool, bounded here by age). Checksums are not
//! checked: with offload the capturing host's own packets carry wrong ones.

use std::net::{IpAddr, SocketAddr};

use etherparse::defrag::IpDefragPool;
use etherparse::{IpNumber, LaxIpSlice, SlicedPacket, TcpSlice};

/// One TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    /// The captured part of the payload.
    pub payload: &'a [u8],
    /// Payload bytes that were on the wire but not in the capture.
    pub missing: u32,
}

/// How many packets an unfinished fragment set is kept for.
const FRAGMENT_AGE: u64 = 10_000;

/// Turns IP packets into TCP segments, reassembling fragments.
pub struct IpLayer {
    defrag: IpDefragPool<u64, ()>,
    fragments_pending: bool,
}

impl Default for IpLayer {
    fn default() -> Self {
        IpLayer {
            defrag: IpDefragPool::new(),
            fragments_pending: false,
        }
    }
}

impl IpLayer {
    /// Hands the TCP segment in `packet` (packet number `number`) to
    /// `on_segment`. Not TCP: nothing. Damaged: an error text.
    pub fn packet(
        &mut self,
        number: u64,
        packet: &[u8],
        on_segment: &mut dyn FnMut(&Segment<'_>),
    ) -> Result<(), String> {
        let (ip, _ext_error) =
            LaxIpSlice::from_slice(packet).map_err(|e| format!("bad IP header: {e}"))?;
        let payload = ip.payload();
        if payload.ip_number != IpNumber::TCP {
            return Ok(());
        }
        let (src, dst) = (ip.source_addr(), ip.destination_addr());
        if payload.fragmented {
            return self.fragment(number, packet, src, dst, on_segment);
        }
        // What the IP header says the packet holds, against what was captured.
        let declared = match &ip {
            LaxIpSlice::Ipv4(v4) => usize::from(v4.header().total_len()),
            LaxIpSlice::Ipv6(v6) => 40 + usize::from(v6.header().payload_length()),
        };
        let missing = if payload.incomplete {
            declared.saturating_sub(packet.len()) as u32
        } else {
            0
        };
        let tcp = TcpSlice::from_slice(payload.payload)
            .map_err(|e| format!("TCP header cut short or damaged: {e}"))?;
        on_segment(&segment(src, dst, &tcp, missing));
        Ok(())
    }

    fn fragment(
        &mut self,
        number: u64,
        packet: &[u8],
        src: IpAddr,
        dst: IpAddr,
        on_segment: &mut dyn FnMut(&Segment<'_>),
    ) -> Result<(), String> {
        let sliced = SlicedPacket::from_ip(packet).map_err(|e| format!("bad IP fragment: {e}"))?;
        self.fragments_pending = true;
        let whole = self
            .defrag
            .process_sliced_packet(&sliced, number, ())
            .map_err(|e| format!("IP fragments do not fit together: {e}"))?;
        if number.is_multiple_of(1024) && self.fragments_pending {
            // Forget fragment sets whose rest never came.
            self.defrag
                .retain(|first| number.saturating_sub(*first) < FRAGMENT_AGE);
        }
        if let Some(whole) = whole {
            let result = TcpSlice::from_slice(&whole.payload)
                .map_err(|e| format!("reassembled TCP header damaged: {e}"))
                .map(|tcp| on_segment(&segment(src, dst, &tcp, 0)));
            self.defrag.return_buf(whole);
            result?;
        }
        Ok(())
    }
}

fn segment<'a>(src: IpAddr, dst: IpAddr, tcp: &TcpSlice<'a>, missing: u32) -> Segment<'a> {
    Segment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
        missing,
    }
}
