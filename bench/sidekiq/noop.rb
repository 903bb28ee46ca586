# noop.rb: the Sidekiq side of the benchmark, the counterpart of NoopJob in
# bench/jobs.c.
# NoopJob does nothing; the file notes when the first job started and when the
# N-th ($SQUIRE_BENCH_JOBS, default 100000) ended, and prints
# "bench: N jobs in S s", so that start-up and shutdown are not in the
# measured time.
#
#   REDIS_URL=redis://127.0.0.1:PORT/0 sidekiq -r ./bench/sidekiq/noop.rb \
#     -e production -c 10 -q default
#
# Sidekiq logs a start and a done line per job at INFO, as squire does; with
# SIDEKIQ_BENCH_LOG=warn the level is WARN (as Sidekiq's bin/sidekiqload sets
# ERROR) and only the bench line and warnings are written.
require "sidekiq"

module NoopBench
  TARGET = Integer(ENV.fetch("SQUIRE_BENCH_JOBS", "100000"))
  LOCK = Mutex.new
  @first = nil
  @done = 0

  def self.now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Called at the start of each job; the first call notes the time.
  def self.started
    return if @first # set once, under LOCK; a stale nil only costs the lock
    t = now
    LOCK.synchronize { @first ||= t }
  end

  # Called at the end of each job; the TARGET-th call prints the line.
  def self.finished
    n = LOCK.synchronize { @done += 1 }
    return unless n == TARGET
    line = format("bench: %d jobs in %.6f s", TARGET, now - @first)
    # The logger writes to $stdout (sync), but print the line directly so it
    # shows at any log level; one write call, so lines do not interleave.
    $stdout.write("#{line}\n")
    $stdout.flush
    # and to $SQUIRE_BENCH_OUT, so bench/run need not read the large log
    out = ENV["SQUIRE_BENCH_OUT"]
    File.write(out, "#{line}\n") if out && !out.empty?
  end
end

# Debian pairs Sidekiq 6.4.1 with redis-rb 4.8, which warns on stderr, with a
# caller backtrace line, at every BRPOP Sidekiq makes ("Passing the timeout as
# a positional argument is deprecated") and at every heartbeat's SADD. That is
# a packaging mismatch, not Sidekiq's cost, so silence it.
Redis.silence_deprecations = true

if ENV["SIDEKIQ_BENCH_LOG"].to_s.downcase == "warn"
  Sidekiq.logger.level = Logger::WARN
end

class NoopJob
  include Sidekiq::Worker

  def perform(*)
    NoopBench.started
    NoopBench.finished
  end
end
