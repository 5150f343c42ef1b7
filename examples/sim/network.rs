//! The network tier's EC2 API, in memory: the tier's own fake
//! (`dify_stack::network::testing::FakeEc2`). NAT gateways are `pending` until their sampled
//! `nat_gateway` duration has passed; the wait polls on the real adapter's schedule
//! (`SdkEc2`'s: 0.1 s doubling to 15 s, `dify_stack::network::sdk::next_nat_poll`).

pub(crate) use dify_stack::network::testing::FakeEc2;
