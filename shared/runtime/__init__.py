"""What the services run on, apart from the event contract: NATS connections, publishing and
batched fetching, stream and bucket bootstrap, the device registry on its stream, instance
membership, performance counters, transports to devices (SSH, local), database roles, and the
embedded nats-server and PostgreSQL of `infrawatch up` and the tests."""
