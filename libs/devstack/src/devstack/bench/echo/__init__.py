"""The bench's ceiling: a trivial `grpc.aio` echo service (echo.proto), its protobuf types
compiled at bench time (descriptors), the server process (service), and its measurement
directly and through a gateway rendered from the same template as MedStation's
(devstack.bench.ceilings)."""
