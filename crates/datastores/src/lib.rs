//! Datastores tier: Aurora Serverless v2 PostgreSQL, ElastiCache Redis, OpenSearch and S3. Not implemented yet.
