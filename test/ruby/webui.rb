# Sidekiq's API and Web UI (Debian's ruby-sidekiq 6.4.1, or 7.3.10 by RUBYLIB) looking at squire.
# Sidekiq 8.1.7 (by RUBYLIB and ruby31_compat.rb) runs here without its Web UI (it needs rack 3.2).
#   ruby webui.rb COMMAND [ARGS]   with REDIS_URL set; prints JSON.
require "json"
require "sidekiq"
require "sidekiq/api"
if Sidekiq::VERSION < "8"
  require "sidekiq/web"
  require "rack/mock"
end

def render(paths)
  Sidekiq::Web.use Rack::Session::Cookie, secret: "s" * 64
  paths.map do |path|
    r = Rack::MockRequest.new(Sidekiq::Web).get(path)
    { "path" => path, "status" => r.status, "body" => r.body }
  end
end

# The Metrics tab's reader (7.x, 8.x), as of ARGV[i] (epoch seconds) when given.
def metrics_query(at)
  require "sidekiq/metrics/query"
  Sidekiq::Metrics::Query.new(now: at ? Time.at(at.to_i) : Time.now)
end

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
    paths = %w[/ /busy /queues /retries /morgue /scheduled /stats /stats/queues] +
            Sidekiq::Queue.all.map { |q| "/queues/#{q.name}" } +
            Sidekiq::RetrySet.new.map { |e| "/retries/#{e.score}-#{e.jid}" } +
            Sidekiq::DeadSet.new.select(&:jid).map { |e| "/morgue/#{e.score}-#{e.jid}" } +
            Sidekiq::ScheduledSet.new.map { |e| "/scheduled/#{e.score}-#{e.jid}" }
    render(paths)
  when "metrics_pages"   # the Metrics tab and one class's page (7.x)
    render(["/metrics"] + ARGV.map { |k| "/metrics/#{k}" })
  when "metrics"         # metrics [MINUTES|hHOURS [AT]]: totals per class
    period, at = ARGV
    q = metrics_query(at)
    r = if period.to_s.start_with?("h")
      q.top_jobs(hours: period[1..].to_i)
    else
      q.top_jobs(minutes: (period || 60).to_i)
    end
    r.job_results.map { |k, jr| [k, jr.totals] }.to_h
  when "metrics_job"     # metrics_job CLASS [AT]: totals and the histogram summed, bucket 0 first
    q = metrics_query(ARGV[1])
    jr = q.for_job(ARGV[0], minutes: 60).job_results[ARGV[0]]
    sums = Array.new(26, 0)
    jr.hist.each_value { |h| h.reverse.each_with_index { |n, i| sums[i] += n.to_i } }
    { "totals" => jr.totals, "hist" => sums }
  when "busy8"           # what 8.1.7's busy.html.erb and GET /busy read (its Web UI needs rack 3.2)
    ps = Sidekiq::ProcessSet.new
    ws = Sidekiq::WorkSet.new
    states = Sidekiq::IterableJobQuery.new(ws.map { |_, _, work| work.job.jid })
    { "processes" => ps.size, "threads" => ps.total_concurrency, "busy" => ws.size,
      "rss" => ps.total_rss, "leader" => ps.leader,
      "rows" => ps.map do |p|
        { "name" => "#{p["hostname"]}:#{p["pid"]}", "tag" => p.tag, "labels" => p.labels,
          "embedded" => p.embedded?, "stopping" => p.stopping?, "identity" => p.identity,
          "version" => p.version, "started_at" => Time.at(p["started_at"]).to_f,
          "rss" => p["rss"].to_i, "concurrency" => p["concurrency"], "busy" => p["busy"],
          "queues" => p.queues, "weights" => p.capsules.values.map { |c| c["weights"] } }
      end,
      "jobs" => ws.map do |process, thread, work|
        job = work.job
        { "process" => process, "thread" => thread, "jid" => job.jid, "queue" => work.queue,
          "class" => job.display_class, "args" => job.display_args, "run_at" => work.run_at.to_f,
          "state" => states[job.jid].nil? ? nil : "iterable", "created_at" => job.created_at.to_f,
          "enqueued_at" => job.enqueued_at.to_f }
      end }
  when "busy_watch"      # busy_watch JID SECONDS: when the job shows on the Busy page and leaves it
    jid, secs = ARGV[0], ARGV[1].to_f
    seen = gone = started = ended = nil
    deadline = Time.now.to_f + secs
    while Time.now.to_f < deadline && gone.nil?
      t = Time.now.to_f
      log = Sidekiq.redis { |c| c.lrange("test:log", 0, -1) }.map { |x| JSON.parse(x) }
      started ||= t if log.any? { |x| x["jid"] == jid && x["what"] == "start" }
      ended ||= t if log.any? { |x| x["jid"] == jid && x["what"] == "ok" }
      ws = Sidekiq::Workers.new
      listed = ws.any? do |_pid, _tid, work|
        job = work.is_a?(Hash) ? work["payload"] : work.job.item
        job["jid"] == jid
      end
      if listed && ws.size > 0
        seen ||= t
      elsif seen && !listed && ws.size == 0
        gone = t
      end
      sleep 0.05
    end
    { "started" => started, "seen" => seen, "ended" => ended, "gone" => gone }
  when "version"       # which Sidekiq RUBYLIB selected
    { "version" => Sidekiq::VERSION }
  else
    abort "unknown command #{cmd}"
  end
puts JSON.generate(out)
