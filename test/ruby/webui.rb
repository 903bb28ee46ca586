# Sidekiq's API and Web UI (Debian's ruby-sidekiq 6.4.1, or 7.3.10 by RUBYLIB) looking at squire.
#   ruby webui.rb COMMAND [ARGS]   with REDIS_URL set; prints JSON.
require "json"
require "sidekiq"
require "sidekiq/api"
require "sidekiq/web"
require "rack/mock"

Sidekiq.logger.level = Logger::WARN
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL") } }

cmd = ARGV.shift
out =
  case cmd
  when "processes"
    Sidekiq::ProcessSet.new.map do |p|
      { "identity" => p["identity"], "hostname" => p["hostname"], "pid" => p["pid"],
        "concurrency" => p["concurrency"], "queues" => p["queues"], "tag" => p["tag"],
        "labels" => p["labels"], "busy" => p["busy"], "quiet" => p["quiet"],
        "stopping" => p.stopping?, "beat" => p["beat"], "rss" => p["rss"],
        "started_at" => p["started_at"] }
    end
  when "workers"
    Sidekiq::Workers.new.map do |process_id, tid, work|
      if work.is_a?(Hash)  # 6.4.1: a hash with the payload parsed
        job, queue, run_at = work["payload"], work["queue"], work["run_at"]
      else                 # 7.x: Sidekiq::Work (#[] is deprecated)
        job, queue, run_at = work.job.item, work.queue, work.run_at.to_i
      end
      { "process" => process_id, "tid" => tid, "queue" => queue,
        "class" => job["class"], "jid" => job["jid"], "run_at" => run_at }
    end
  when "stats"
    s = Sidekiq::Stats.new
    { "processed" => s.processed, "failed" => s.failed, "workers_size" => s.workers_size,
      "processes_size" => s.processes_size, "enqueued" => s.enqueued,
      "retry_size" => s.retry_size, "dead_size" => s.dead_size }
  when "quiet", "stop"   # the Web UI's buttons: Process#quiet! / #stop!
    p = Sidekiq::ProcessSet.new.find { |x| x["identity"] == ARGV[0] }
    abort "no process #{ARGV[0]}" unless p
    cmd == "quiet" ? p.quiet! : p.stop!
    { "sent" => cmd }
  when "pages"           # render every page the way a browser would ask for it
    Sidekiq::Web.use Rack::Session::Cookie, secret: "s" * 64
    paths = %w[/ /busy /queues /retries /morgue /scheduled /stats /stats/queues] +
            Sidekiq::Queue.all.map { |q| "/queues/#{q.name}" } +
            Sidekiq::RetrySet.new.map { |e| "/retries/#{e.score}-#{e.jid}" } +
            Sidekiq::DeadSet.new.select(&:jid).map { |e| "/morgue/#{e.score}-#{e.jid}" } +
            Sidekiq::ScheduledSet.new.map { |e| "/scheduled/#{e.score}-#{e.jid}" }
    paths.map do |path|
      r = Rack::MockRequest.new(Sidekiq::Web).get(path)
      { "path" => path, "status" => r.status, "body" => r.body }
    end
  when "version"       # which Sidekiq RUBYLIB selected
    { "version" => Sidekiq::VERSION }
  else
    abort "unknown command #{cmd}"
  end
puts JSON.generate(out)
