//! RabbitMQ: the job contract, the topology and the worker loop.
