"""The gRPC server's receive window is fixed: an upload holds a few chunks in the server
whatever the link, not what grpc's BDP probe would let a client send ahead.

The link is a loopback proxy that delivers in bursts (:class:`BurstLink`): a long round
trip, over which grpc's default window grew to 32-256 MiB per connection, and a client's
send-ahead arriving at once, faster than the server writes it to disk.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import beephost_client as bc
from beephost_protocol.files import FileInfo
from tests.integration.rpc.burst_link import BurstLink
from tests.integration.rpc.support import RpcProcess

MIB = 1 << 20
FILE_MIB = 200  # what the e2e test moves
CLIENTS = 2  # each on its own connection, with its own window
ROUND_TRIP = 0.025  # seconds each direction of the link holds its bytes
# The e2e test's limit. Per connection the 4 MiB window plus each chunk's copies on its
# way to the disk, and the allocator's slack: measured +14 to +24 MiB. With grpc's
# BDP-sized windows the same uploads grew it by 70 to 136 MiB (one client on one
# connection: 36 to 108 MiB, too close to the limit to fail every time).
GROWTH_LIMIT = 48 * MIB


def upload(url: str, name: str, source: Path) -> FileInfo:
    # A subchannel of its own: grpc would otherwise share one connection (and one
    # window) between channels to the same target.
    options = [("grpc.use_local_subchannel_pool", 1)]
    transport = bc.GRPCTransport(url, options=options)
    with bc.connect(transport=transport) as client:
        return client.files.write(name, source)


def test_uploads_over_a_long_fast_link_hold_a_few_chunks_in_the_server(
    rpc_process: RpcProcess, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(FILE_MIB):
            out.write(os.urandom(MIB))  # incompressible, whatever the channel does
    with BurstLink(rpc_process.port, ROUND_TRIP) as link:
        url = f"grpc://127.0.0.1:{link.port}"
        # An upload that makes the threads and buffers every upload uses.
        with bc.connect(url) as client:
            client.files.write("warm-up.bin", os.urandom(16 * MIB))
        before = rpc_process.peak_rss()
        with ThreadPoolExecutor(CLIENTS) as pool:
            names = [f"big-{i}.bin" for i in range(CLIENTS)]
            infos = list(pool.map(upload, [url] * CLIENTS, names, [source] * CLIENTS))
        growth = rpc_process.peak_rss() - before
    assert [info.size for info in infos] == [FILE_MIB * MIB] * CLIENTS
    assert growth < GROWTH_LIMIT, f"the server's peak RSS grew {growth} bytes"
