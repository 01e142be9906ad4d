// kv on PostgreSQL (see kv_backend.hpp; the design of db:update is at the top of kv_postgres.cpp).
// One table, depot_kv (db text, key bytea, value bytea, primary key (db, key)), created on first
// use; only SQL that CockroachDB and YugabyteDB accept too (docs/kv-postgres.md).
#pragma once

#include <string>

#include "bindings/kv_backend.hpp"
#include "bindings/postgres_connection.hpp"

namespace depot {

class PostgresBackend final : public KvBackend {
 public:
  explicit PostgresBackend(const std::string& url);

  bool waits() const override { return true; }
  void get(const KvCall& call, std::string_view key, KvDone done) override;
  void exists(const KvCall& call, std::string_view key, KvDone done) override;
  void put(const KvCall& call, std::string_view key, std::string value, KvDone done) override;
  void remove(const KvCall& call, std::string_view key, KvDone done) override;
  void scan(const KvCall& call, const KvRange& range, KvDone done) override;
  void count(const KvCall& call, const std::string& prefix, KvDone done) override;
  void update(const KvCall& call, const std::shared_ptr<KvAttempt>& attempt, const KvFunction& fn,
              KvDone done) override;
  std::shared_ptr<KvAttempt> new_attempt() override;
  void sync(Worker* worker, KvDone done) override;

 private:
  // Durable calls commit synchronously; batched ones ({durable = false}) on connections set to
  // synchronous_commit = off (their own pool).
  const PostgresDatabase& database(bool durable) const { return durable ? durable_ : batched_; }
  // Runs one statement on a session of its own.
  void run(const KvCall& call, PostgresStatement statement,
           std::function<void(PostgresResult&, KvOutcome&)> read, KvDone done);

  PostgresDatabase durable_;
  PostgresDatabase batched_;
};

}  // namespace depot
