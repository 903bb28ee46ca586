# Drives real Sidekiq (client and API: Debian's 6.4.1, or 7.3.10 or 8.1.7 by RUBYLIB) for the compatibility suite.
#   ruby sidekiq.rb COMMAND [ARGS]   with REDIS_URL set; prints JSON on stdout.
require "json"
require "sidekiq"
require "sidekiq/api"

Sidekiq.logger.level = Logger::WARN
# rediss:// as Heroku documents it (SQT_SSL_VERIFY=none), or with a CA file.
redis_opts = { url: ENV.fetch("REDIS_URL") }
redis_opts[:ssl_params] = { verify_mode: OpenSSL::SSL::VERIFY_NONE } if ENV["SQT_SSL_VERIFY"] == "none"
redis_opts[:ssl_params] = { ca_file: ENV["SQT_SSL_CA_FILE"] } if ENV["SQT_SSL_CA_FILE"]
Sidekiq.configure_client { |c| c.redis = redis_opts }

class HardJob
  include Sidekiq::Worker
end

class FailJob
  include Sidekiq::Worker
  sidekiq_options retry: 2, backtrace: true
end

class DeadJob
  include Sidekiq::Worker
  sidekiq_options retry: 0
end

class HangJob # squire's test_isolated: spins forever
  include Sidekiq::Worker
end

def entry(e)
  { "jid" => e.jid, "klass" => e.klass, "args" => e.args, "queue" => e.queue,
    "error_class" => e["error_class"], "error_message" => e["error_message"],
    "retry_count" => e["retry_count"], "failed_at" => e["failed_at"],
    "failed_at_class" => e["failed_at"].class.name, "retried_at" => e["retried_at"],
    # as the API reads it (8.x: Integer is ms, Float is s; earlier: no reader)
    "failed_at_epoch" => e.respond_to?(:failed_at) ? e.failed_at.to_f : e["failed_at"].to_f,
    "score" => e.score, "error_backtrace" => e.error_backtrace,
    "enqueued_at_class" => e["enqueued_at"].class.name,
    "created_at_class" => e["created_at"].class.name, "at" => e.at.to_f }
end

cmd = ARGV.shift
out =
  case cmd
  when "push"          # Sidekiq::Client.push with a string class
    { "jid" => Sidekiq::Client.push("class" => ARGV[0], "args" => JSON.parse(ARGV[1])) }
  when "push_at"       # Sidekiq::Client.push with "at": ZADD schedule, even for a past time
    { "jid" => Sidekiq::Client.push("class" => ARGV[0], "args" => JSON.parse(ARGV[1]),
                                    "at" => ARGV[2].to_f) }
  when "push_queues"   # one OkJob per queue named in the file ARGV[0] (one name a line)
    File.readlines(ARGV[0], chomp: true).reject(&:empty?).map do |q|
      Sidekiq::Client.push("class" => "OkJob", "queue" => q, "args" => [q])
    end
  when "set_timeout"   # a per-job timeout from Ruby: HangJob.set(squire_timeout: N)
    { "jid" => HangJob.set(squire_timeout: ARGV[0].to_f, retry: 0).perform_async }
  when "perform_async"
    { "jid" => HardJob.perform_async(1, "two", { "three" => [3.5, nil] }) }
  when "perform_in"
    { "jid" => HardJob.perform_in(ARGV[0].to_f, "later") }
  when "push_bulk"
    { "jids" => Sidekiq::Client.push_bulk("class" => HardJob, "args" => (1..ARGV[0].to_i).map { |i| [i] }) }
  when "fail"          # a class with sidekiq_options retry: 2, backtrace: true
    { "jid" => FailJob.perform_async("RuntimeError", "it broke") }
  when "dead_job"      # sidekiq_options retry: 0: dead at the first failure
    { "jid" => DeadJob.perform_async("Timeout::Error", "slow") }
  when "retries"
    Sidekiq::RetrySet.new.map { |e| entry(e) }
  when "dead"
    Sidekiq::DeadSet.new.map { |e| entry(e) }
  when "scheduled"
    Sidekiq::ScheduledSet.new.map { |e| entry(e) }
  when "queue"         # every job in a queue, as the API reads it
    Sidekiq::Queue.new(ARGV[0] || "default").map do |j|
      { "jid" => j.jid, "klass" => j.klass, "args" => j.args, "queue" => j.queue,
        "enqueued_at" => j.enqueued_at.to_f, "created_at" => j.created_at.to_f,
        "latency" => Sidekiq::Queue.new(ARGV[0] || "default").latency,
        "enqueued_at_class" => j["enqueued_at"].class.name, "retry" => j["retry"] }
    end
  when "retry_all"     # the Web UI's "Retry" button on every entry
    n = 0
    Sidekiq::RetrySet.new.each { |e| e.retry; n += 1 }
    { "retried" => n }
  when "activejob"     # the payload Rails' Sidekiq adapter writes for perform_later
    jid = SecureRandom.hex(12)
    job = { "class" => "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
            "wrapped" => "MyActiveJob", "queue" => "default",
            "args" => [{ "job_class" => "MyActiveJob", "job_id" => SecureRandom.uuid,
                         "provider_job_id" => nil, "queue_name" => "default", "priority" => nil,
                         "arguments" => [42, { "name" => "bob", "_aj_symbol_keys" => ["name"] }],
                         "executions" => 0, "exception_executions" => {}, "locale" => "en",
                         "timezone" => "UTC", "enqueued_at" => Time.now.utc.iso8601(9) }],
            "retry" => true, "jid" => jid }
    { "jid" => Sidekiq::Client.push(job) }
  when "stats"
    s = Sidekiq::Stats.new
    { "processed" => s.processed, "failed" => s.failed, "retry_size" => s.retry_size,
      "dead_size" => s.dead_size, "scheduled_size" => s.scheduled_size, "enqueued" => s.enqueued }
  when "stats_full"    # Stats#fetch_stats! plus every queue's size and latency
    s = Sidekiq::Stats.new
    s.fetch_stats!
    { "processed" => s.processed, "failed" => s.failed, "retry_size" => s.retry_size,
      "dead_size" => s.dead_size, "scheduled_size" => s.scheduled_size, "enqueued" => s.enqueued,
      "processes_size" => s.processes_size, "workers_size" => s.workers_size,
      "queues" => s.queues,
      "latency" => Sidekiq::Queue.all.to_h { |q| [q.name, q.latency] } }
  when "kill_job"      # a job pushed to the dead set through DeadSet#kill, as the API does
    job = { "class" => ARGV[0], "args" => JSON.parse(ARGV[1]), "queue" => ARGV[2] || "default",
            "retry" => true, "jid" => SecureRandom.hex(12), "created_at" => Time.now.to_f,
            "enqueued_at" => Time.now.to_f, "error_class" => "RuntimeError",
            "error_message" => "given up", "failed_at" => Time.now.to_f, "retry_count" => 3 }
    Sidekiq::DeadSet.new.kill(JSON.generate(job), notify_failure: false)
    { "jid" => job["jid"] }
  when "processes"     # ProcessSet#each without the cleanup
    Sidekiq::ProcessSet.new(false).map do |p|
      { "identity" => p.identity, "busy" => p["busy"], "quiet" => p["quiet"],
        "concurrency" => p["concurrency"], "queues" => p["queues"], "tag" => p.tag }
    end
  when "version"       # which Sidekiq RUBYLIB selected
    { "version" => Sidekiq::VERSION }
  else
    abort "unknown command #{cmd}"
  end
puts JSON.generate(out)
