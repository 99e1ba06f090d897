//! Clustered caches: Azure Managed Redis (OSS cluster policy) and clustered Azure Cache for Redis.
