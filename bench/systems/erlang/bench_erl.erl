%% Erlang runner of the cluster benchmark (bench/systems/CONTRACT.md):
%% Erlang distreg (biokoda/distreg) and OTP's global, each on three Erlang
%% nodes ("hosts") on loopback, driven from a hidden controller node.
%%
%% Started by run.sh as
%%   erl -noshell -hidden -name ... -setcookie ... -s bench_erl main
%% with its options in the environment (BE_*).  Contract lines go to stdout,
%% progress to stderr.  The same module is loaded on every node: the
%% functions under "node side" run there (through rpc/erpc/spawn).
-module(bench_erl).

-export([main/0]).
%% node side
-export([node_init/0, count/1, count_restart/4, reg_run/2, measure/4,
         poll_gone/5, g_pids/1, set_expected/1, served_count/0, owners/2,
         owners_view/1, view/0, live_workers/0, counters/0,
         whereis_check/1, connect_all/1]).

-define(DR, "erlang-distreg").
-define(CALLERS, 64).
-define(GL, "otp-global").
-define(CTRS, [shouldrestart, dienow, restart_ok, restart_elsewhere,
               restart_stale_here, restart_stale_owner, restart_dead,
               restart_err]).

%%% ===================================================================
%%% Controller
%%% ===================================================================

main() ->
    Code = try run() of
               _ -> 0
           catch Cl:R:St ->
                   err("controller failed: ~p:~p~n~p", [Cl, R, St]),
                   2
           end,
    erlang:halt(Code).

run() ->
    ok = file:write_file(env("BE_PIDFILE"),
                         [os:getpid(), " ", atom_to_list(node()), "\n"], [append]),
    Short = env("BE_SHORT") == "1",
    N = list_to_integer(env("BE_NAMES")),
    C = #{short => Short,
          n => N,
          ops => case Short of true -> 20000; false -> 100000 end,
          kills => case Short of true -> 10; false -> 20 end,
          gl_cap => case Short of true -> 1000; false -> 2000 end,
          fail_names => min(N, 1000),
          join_wait => case Short of true -> 10; false -> 60 end,
          ticktime => net_kernel:get_net_ticktime(),
          uniq => env("BE_UNIQ"),
          pidfile => env("BE_PIDFILE"),
          bench_ebin => env("BE_BENCH_EBIN"),
          dr_ebin => env("BE_DR_EBIN"),
          otp => env("BE_OTP")},
    case maps:get(dr_ebin, C) of
        "" -> meta(skip, ?DR, env("BE_DR_SKIP"));
        _ -> run_distreg(C)
    end,
    run_global(C).

settings(Sys, C) ->
    TT = maps:get(ticktime, C),
    case maps:get(short, C) of
        true ->
            meta(setting, Sys, fmt("net_ticktime=~p s on every node (--short; "
                                   "the default is 60 s)", [TT]));
        false ->
            meta(setting, Sys, fmt("net_ticktime=~p s (the default)", [TT]))
    end,
    meta(setting, Sys, "3 hosts = 3 Erlang nodes (one VM each) on one machine "
         "over loopback (-name x@127.0.0.1); a hidden controller node "
         "orchestrates them; all other settings default").

%%% ---------------- distreg ----------------

run_distreg(C) ->
    meta(version, ?DR, env("BE_DR_COMMIT") ++ " OTP " ++ maps:get(otp, C)),
    settings(?DR, C),
    N = maps:get(n, C),
    meta(note, ?DR, fmt("~p names; workers are gen_servers started with "
                        "distreg:start(Name; {bench_erl_worker;start;[Name]}); "
                        "one sequential caller per host", [N])),
    scenario(?DR, "register/lookup/call/kill worker", fun() -> dr_main(C) end),
    scenario(?DR, "join", fun() -> dr_join(C) end),
    scenario(?DR, "kill host", fun() -> dr_host_failure(C, kill) end),
    scenario(?DR, "freeze host", fun() -> dr_host_failure(C, freeze) end),
    meta(note, ?DR, "failure: distreg does not restart workers whose process "
         "or node died (no supervision; on DOWN/nodedown it only drops them "
         "from its tables and recomputes the node ring); so no restarted_ms").

dr_main(C) ->
    N = maps:get(n, C),
    Cl = start_cluster(C, ["h1", "h2", "h3"], dr),
    try
        [H1, H2, H3] = Nodes = cl_nodes(Cl),
        %% register: N names from one host (h1), then N other names from all
        %% three hosts at once.
        {NamesA, _NamesB} = register_both(?DR, dr, "start/2", Nodes, N),
        %% lookup from h1 of names owned by h2 and h3
        Owners = rpc:call(H1, bench_erl, owners_view, [NamesA]),
        Remote = [Nm || {Nm, O} <- lists:zip(NamesA, Owners), O /= H1],
        Ops = maps:get(ops, C),
        WC = rpc:call(H2, bench_erl, whereis_check,
                      [lists:sublist([Nm || {Nm, O} <- lists:zip(NamesA, Owners),
                                            O == H2], 100)]),
        meta(note, ?DR, fmt("lookup: distreg:whereis/1 reads only the table of "
                            "local names (reg/1) so it returned a pid for ~s "
                            "global names even on their owner; a non-owner has "
                            "no entry (get_g_pid is local ETS); what distreg "
                            "itself does to reach a global name from a non-owner "
                            "is node_for_name (local hash) then a call on that "
                            "node; measured: node_for_name + rpc:call(Owner; "
                            "distreg; get_g_pid; [Name]) from h1 for names "
                            "owned by h2/h3; and node_for_name alone", [WC])),
        lookup_line(?DR, "node_for_name + rpc get_g_pid on a non-owner",
                    rpc:call(H1, bench_erl, measure, [dr_lookup, Remote, Ops, 1])),
        lookup_line(?DR, "node_for_name on a non-owner (owner node only; no pid)",
                    rpc:call(H1, bench_erl, measure, [dr_nfn, Remote, Ops, 1])),
        %% call
        call_line(?DR, "distreg:call from a non-owner 1 in flight",
                  rpc:call(H1, bench_erl, measure, [dr_call, Remote, Ops, 1])),
        call_line(?DR, "distreg:call from a non-owner 64 in flight",
                  rpc:call(H1, bench_erl, measure, [dr_call, Remote, Ops, 64])),
        %% kill worker: workers owned by h2, watched from h1 and h3
        OnH2 = [Nm || {Nm, O} <- lists:zip(NamesA, Owners), O == H2],
        Victims = [{Nm, rpc:call(H2, distreg, get_g_pid, [Nm])}
                   || Nm <- lists:sublist(OnH2, maps:get(kills, C))],
        kill_worker_trials(?DR, dr, [H1, H3], Victims),
        ok
    after
        stop_cluster(Cl)
    end.

dr_host_failure(C, How) ->
    M = maps:get(fail_names, C),
    Cl = start_cluster(C, ["h1", "h2", "h3"], dr),
    try
        [H1, H2, H3] = Nodes = cl_nodes(Cl),
        Names = names(atom_to_list(How), M),
        {Ok, _Wall, Err} = register_from(dr, lists:zip(Nodes, split(Names, 3))),
        check_reg(?DR, "failure setup", Ok, M, Err),
        Owners = rpc:call(H1, bench_erl, owners_view, [Names]),
        Items = [{Nm, rpc:call(H3, distreg, get_g_pid, [Nm])}
                 || {Nm, O} <- lists:zip(Names, Owners), O == H3],
        host_failure(?DR, dr, How, Cl, H3, [H1, H2], Items, M)
    after
        stop_cluster(Cl)
    end.

dr_join(C) ->
    N = maps:get(n, C),
    Cl0 = start_cluster(C, ["h1", "h2", "h3"], dr),
    ClRef = make_ref(),
    put(ClRef, Cl0),
    try
        [H1 | _] = Nodes3 = cl_nodes(Cl0),
        Names = names("j", N),
        {Ok, _, Err} = register_from(dr, lists:zip(Nodes3, split(Names, 3))),
        check_reg(?DR, "join setup", Ok, N, Err),
        Tuple3 = list_to_tuple(lists:sort(Nodes3)),
        set_expected_all(H1, Nodes3, Names, Tuple3),
        Served0 = served_total(Nodes3),
        Served0 == N orelse
            meta(note, ?DR, fmt("join: before the join only ~p of ~p workers "
                                "were on their owner", [Served0, N])),
        Before = rpc:call(H1, bench_erl, owners_view, [Names]),
        %% the 4th node: start distreg on it first (alone), then connect it
        H4C = start_node(C, "h4"),
        put(ClRef, Cl0 ++ [H4C]),
        H4 = maps:get(node, H4C),
        {ok, _} = rpc:call(H4, application, ensure_all_started, [distreg]),
        ok = wait_views([H4], {H4}, 10000),
        Nodes4 = Nodes3 ++ [H4],
        Tuple4 = list_to_tuple(lists:sort(Nodes4)),
        Exp = set_expected_all(H1, Nodes4, Names, Tuple4),
        progress("join: ~p workers on 3 nodes; 4th node ~p connects", [N, H4]),
        Wait = maps:get(join_wait, C) * 1000,
        T0 = now_us(),
        ok = rpc:call(H4, bench_erl, connect_all, [Nodes3]),
        R = join_poll(Nodes4, Tuple4, N, T0, Wait,
                      #{placed => undefined, conv => undefined}),
        %% owners before/after by node_for_name on h1
        After = case rpc:call(H1, bench_erl, view, []) of
                    Tuple4 -> rpc:call(H1, bench_erl, owners_view, [Names]);
                    _ -> Exp
                end,
        Moved = length([1 || {B, A} <- lists:zip(Before, After), B /= A]),
        Cfg = "4th host joins 3",
        out(?DR, Cfg, "join", "moved_pct", 100 * Moved / N, "%"),
        out(?DR, Cfg, "join", "optimum_pct", 25, "%"),
        case maps:get(placed, R) of
            undefined ->
                meta(note, ?DR, fmt("join: not every worker was on its owner "
                                    "within the ~p s wait; no placed_ms",
                                    [Wait div 1000]));
            P -> out(?DR, Cfg, "join", "placed_ms", P, "ms")
        end,
        out(?DR, Cfg, "join", "misplaced_10s", maps:get(10000, R), "workers"),
        case maps:get(short, C) of
            false -> out(?DR, Cfg, "join", "misplaced_60s", maps:get(60000, R),
                         "workers");
            true -> ok
        end,
        Ctr = sum_counters(Nodes4),
        Live = lists:append([rpc:call(Nd, bench_erl, live_workers, [])
                             || Nd <- Nodes4]),
        Dups = dups(Live),
        Conv = case maps:get(conv, R) of
                   undefined -> "never within the wait";
                   CV -> fmt("~p ms after the connect", [CV])
               end,
        meta(note, ?DR,
             fmt("join: the 4th node started distreg then connected (as "
                 "distreg_tracker's comment asks); every node's ring showed 4 "
                 "nodes ~s; node_for_name is range partitioning of "
                 "phash2 over the sorted node list (not a consistent-hash ring) "
                 "and the new node sorts last; ~p workers got "
                 "{distreg;shouldrestart} (stop; 100 ms later distreg:start "
                 "from the old node as in distreg's test): ~p restarts came back "
                 "on the owner; ~p on another node; ~p got back the worker's own "
                 "dead pid (a stale entry: ~p in the old node's table and ~p in "
                 "the new owner's; so nothing was started and the name has no "
                 "worker from then on); ~p another dead pid; ~p errors; ~p "
                 "workers got {distreg;dienow}; at the end "
                 "~p live workers for ~p names (~p names with 2+ instances); "
                 "misplaced = names not registered (get_g_pid) to a live local "
                 "pid on the node the 4-node ring maps them to; polled every "
                 "50 ms",
                 [Conv, maps:get(shouldrestart, Ctr), maps:get(restart_ok, Ctr),
                  maps:get(restart_elsewhere, Ctr),
                  maps:get(restart_stale_here, Ctr) + maps:get(restart_stale_owner, Ctr),
                  maps:get(restart_stale_here, Ctr), maps:get(restart_stale_owner, Ctr),
                  maps:get(restart_dead, Ctr),
                  maps:get(restart_err, Ctr), maps:get(dienow, Ctr),
                  length(Live), length(lists:usort([Nm || {Nm, _} <- Live])),
                  Dups])),
        ok
    after
        stop_cluster(get(ClRef))
    end.

join_poll(Nodes, Tuple, N, T0, Wait, S) ->
    El = (now_us() - T0) div 1000,
    Mis = N - served_total(Nodes),
    S1 = case maps:get(placed, S) of
             undefined when Mis == 0 -> S#{placed => (now_us() - T0) / 1000};
             _ -> S
         end,
    S2 = case maps:get(conv, S1) of
             undefined ->
                 case lists:all(fun(Nd) -> rpc:call(Nd, bench_erl, view, []) == Tuple
                                end, Nodes) of
                     true -> S1#{conv => (now_us() - T0) div 1000};
                     false -> S1
                 end;
             _ -> S1
         end,
    S3 = lists:foldl(fun(Mark, Acc) ->
                             case El >= Mark andalso not maps:is_key(Mark, Acc) of
                                 true ->
                                     progress("join: ~p misplaced at ~p ms",
                                              [Mis, El]),
                                     Acc#{Mark => Mis};
                                 false -> Acc
                             end
                     end, S2, [10000, 60000]),
    case El >= Wait of
        true -> S3;
        false ->
            timer:sleep(case maps:get(placed, S3) of undefined -> 50; _ -> 250 end),
            join_poll(Nodes, Tuple, N, T0, Wait, S3)
    end.

set_expected_all(H1, Nodes, Names, Tuple) ->
    Exp = rpc:call(H1, bench_erl, owners, [Names, Tuple]),
    [ok = rpc:call(Nd, bench_erl, set_expected,
                   [[Nm || {Nm, O} <- lists:zip(Names, Exp), O == Nd]])
     || Nd <- Nodes],
    Exp.

served_total(Nodes) ->
    lists:sum([case R of {ok, V} -> V; _ -> 0 end
               || R <- erpc:multicall(Nodes, bench_erl, served_count, [], 10000)]).

sum_counters(Nodes) ->
    Ls = [rpc:call(Nd, bench_erl, counters, []) || Nd <- Nodes],
    maps:from_list([{K, lists:sum([V || L <- Ls, is_list(L), {K2, V} <- L, K2 == K])}
                    || K <- ?CTRS]).

dups(Live) ->
    D = lists:foldl(fun({Nm, _}, M) -> maps:update_with(Nm, fun(X) -> X + 1 end, 1, M) end,
                    #{}, Live),
    length([1 || {_, Cn} <- maps:to_list(D), Cn > 1]).

%%% ---------------- global ----------------

run_global(C) ->
    meta(version, ?GL, "OTP " ++ maps:get(otp, C)),
    settings(?GL, C),
    scenario(?GL, "register/lookup/call/kill worker", fun() -> gl_main(C) end),
    meta(note, ?GL, "join: names are not placed by node; nothing moves"),
    scenario(?GL, "kill host", fun() -> gl_host_failure(C, kill) end),
    scenario(?GL, "freeze host", fun() -> gl_host_failure(C, freeze) end),
    meta(note, ?GL, "failure: global does not restart anything; it only drops "
         "the names of dead processes (it links to them) and of nodes that "
         "went down; so no restarted_ms").

gl_main(C) ->
    N = maps:get(n, C),
    G = min(N, maps:get(gl_cap, C)),
    G < N andalso
        meta(note, ?GL, fmt("register_name is slow (a cluster-wide lock per "
                            "name) so register uses ~p names (not ~p) and "
                            "lookups/calls cycle over those", [G, N])),
    Cl = start_cluster(C, ["h1", "h2", "h3"], gl),
    try
        [H1, H2, H3] = Nodes = cl_nodes(Cl),
        {NamesA, _NamesB} = register_both(?GL, gl, "register_name", Nodes, G),
        Ops = maps:get(ops, C),
        %% NamesA live on h1; look them up and call them from h2
        lookup_line(?GL, "whereis_name on a non-owner",
                    rpc:call(H2, bench_erl, measure, [gl_lookup, NamesA, Ops, 1])),
        call_line(?GL, "gen_server:call via {global Name} from a non-owner 1 in flight",
                  rpc:call(H2, bench_erl, measure, [gl_call, NamesA, Ops, 1])),
        call_line(?GL, "gen_server:call via {global Name} from a non-owner 64 in flight",
                  rpc:call(H2, bench_erl, measure, [gl_call, NamesA, Ops, 64])),
        Victims = [{Nm, rpc:call(H1, global, whereis_name, [Nm])}
                   || Nm <- lists:sublist(NamesA, maps:get(kills, C))],
        kill_worker_trials(?GL, gl, [H2, H3], Victims),
        ok
    after
        stop_cluster(Cl)
    end.

gl_host_failure(C, How) ->
    M = min(maps:get(fail_names, C), maps:get(gl_cap, C)),
    Cl = start_cluster(C, ["h1", "h2", "h3"], gl),
    try
        [H1, H2, H3] = Nodes = cl_nodes(Cl),
        Names = names(atom_to_list(How), M),
        Parts = split(Names, 3),
        {Ok, _, Err} = register_from(gl, lists:zip(Nodes, Parts)),
        check_reg(?GL, "failure setup", Ok, M, Err),
        Items = [{Nm, rpc:call(H3, global, whereis_name, [Nm])}
                 || Nm <- lists:nth(3, Parts)],
        host_failure(?GL, gl, How, Cl, H3, [H1, H2], Items, M)
    after
        stop_cluster(Cl)
    end.

%%% ---------------- shared scenario pieces ----------------

check_reg(Sys, What, Ok, N, Err) ->
    Ok == N orelse
        meta(note, Sys, fmt("~s: only ~p of ~p registrations succeeded "
                            "(first error ~0p)", [What, Ok, N, Err])).

lookup_line(Sys, Cfg, {P50, P99, Rate, Bad, Cnt}) ->
    out(Sys, Cfg, "lookup", "p50_us", P50, "us"),
    out(Sys, Cfg, "lookup", "p99_us", P99, "us"),
    out(Sys, Cfg, "lookup", "ops_per_s", Rate, "ops/s"),
    bad_note(Sys, Cfg, Bad, Cnt).

call_line(Sys, Cfg, {P50, P99, Rate, Bad, Cnt}) ->
    out(Sys, Cfg, "call", "p50_us", P50, "us"),
    out(Sys, Cfg, "call", "p99_us", P99, "us"),
    out(Sys, Cfg, "call", "calls_per_s", Rate, "calls/s"),
    bad_note(Sys, Cfg, Bad, Cnt).

bad_note(_, _, 0, _) -> ok;
bad_note(Sys, Cfg, Bad, Cnt) ->
    meta(note, Sys, fmt("~s: ~p of ~p operations gave a wrong answer",
                        [Cfg, Bad, Cnt])).

%% Kill single workers (exit(Pid, kill): the Erlang analogue of SIGKILL of a
%% worker process), one at a time; each time wait until every watcher node
%% stops returning it.  Report the median.
kill_worker_trials(Sys, Kind, Watchers, Victims) ->
    Ts = [gone_once(Kind, Watchers, [V], none, fun() -> exit(Pid, kill) end, 30000)
          || {_, Pid} = V <- Victims, is_pid(Pid)],
    Good = lists:sort([T || T <- Ts, is_number(T)]),
    case Good of
        [] -> meta(skip, Sys, fmt("kill worker process: no measurement (~0p)",
                                  [lists:sublist(Ts, 3)]));
        _ ->
            out(Sys, "kill worker process", "failure", "gone_ms", median(Good), "ms"),
            meta(note, Sys,
                 fmt("kill worker process: exit(Pid; kill) of a worker (the "
                     "Erlang analogue of SIGKILL of a worker process) until "
                     "both other nodes stop returning it (~s; polled every "
                     "~~1 ms); median of ~p kills (min ~.1f max ~.1f ms)~s",
                     [lookup_desc(Kind), length(Good), hd(Good), lists:last(Good),
                      case length(Ts) - length(Good) of
                          0 -> "";
                          F -> fmt("; ~p kills never went away", [F])
                      end]))
    end.

lookup_desc(dr) -> "node_for_name + rpc get_g_pid on the owner";
lookup_desc(gl) -> "global:whereis_name".

%% kill -9 (How = kill) or SIGSTOP (How = freeze) the OS process of Victim.
host_failure(Sys, Kind, How, Cl, Victim, Watchers, Items, M) ->
    [VC] = [X || X <- Cl, maps:get(node, X) == Victim],
    OsPid = maps:get(ospid, VC),
    TT = maps:get(ticktime, get_c()),
    {Sig, Cfg, Timeout} = case How of
                              kill -> {"-KILL", "kill host", 60000};
                              freeze -> {"-STOP", "freeze host (SIGSTOP)",
                                         TT * 2000 + 30000}
                          end,
    progress("~s ~s: ~p of ~p workers on ~p; kill ~s ~s", [Sys, Cfg, length(Items),
                                                           M, Victim, Sig, OsPid]),
    T = gone_once(Kind, Watchers, Items, Victim,
                  fun() -> os_kill(Sig, OsPid) end, Timeout),
    os_kill("-KILL", OsPid),
    case T of
        X when is_number(X) ->
            out(Sys, Cfg, "failure", "gone_ms", X, "ms");
        Other ->
            meta(skip, Sys, fmt("~s: the dead node's workers were still returned "
                                "after ~p s (~0p)", [Cfg, Timeout div 1000, Other]))
    end,
    What = case Kind of
               dr -> "a survivor stops returning a name when its own node_for_name "
                     "no longer maps it to the dead node and no live node's "
                     "get_g_pid gives a pid on the dead node";
               gl -> "a survivor stops returning a name when its "
                     "global:whereis_name no longer gives the dead pid"
           end,
    Detail = case How of
                 kill -> "kill -9 of the node's OS process; on one machine the "
                         "kernel closes its TCP connections at once so nodedown "
                         "is seen without waiting for net_ticktime";
                 freeze -> fmt("SIGSTOP of the node's OS process (a host that "
                               "hangs or drops off the network: connections stay "
                               "open) so nodedown waits for net_ticktime=~p s",
                               [TT])
             end,
    meta(note, Sys, fmt("~s: ~s; ~p names in all; ~p on the victim; ~s; polled "
                        "every ~~1 ms from both survivors", [Cfg, Detail, M,
                                                          length(Items), What])).

os_kill(Sig, OsPid) ->
    Port = open_port({spawn_executable, os:find_executable("kill")},
                     [{args, [Sig, OsPid]}, exit_status, stderr_to_stdout]),
    receive {Port, {exit_status, _}} -> ok after 5000 -> ok end.

%% Start pollers on Watchers, wait until they see every item, run KillFun,
%% and wait until every watcher sees none of them.  Returns ms or an error.
gone_once(Kind, Watchers, Items, Victim, KillFun, TimeoutMs) ->
    Ref = make_ref(),
    Ctl = self(),
    Ps = [spawn(W, bench_erl, poll_gone, [Ctl, Ref, Kind, Items, Victim])
          || W <- Watchers],
    try
        Ready = [receive {Ref, ready, W, R} -> R after 20000 -> timeout end
                 || W <- Watchers],
        case lists:all(fun(R) -> R == length(Items) end, Ready) of
            false -> {not_all_present, Ready, length(Items)};
            true ->
                T0 = now_us(),
                KillFun(),
                Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
                Gone = [receive {Ref, gone, W, T} -> T
                        after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
                                timeout
                        end || W <- Watchers],
                case lists:member(timeout, Gone) of
                    true -> {timeout, Gone};
                    false -> (lists:max(Gone) - T0) / 1000
                end
        end
    after
        [exit(P, kill) || P <- Ps]
    end.

%%% ---------------- cluster handling ----------------

start_cluster(C, Tags, Kind) ->
    put(bench_c, C),
    Cl = [start_node(C, T) || T <- Tags],
    Nodes = cl_nodes(Cl),
    try
        case Kind of
            dr -> [{ok, _} = rpc:call(Nd, application, ensure_all_started,
                                      [distreg]) || Nd <- Nodes];
            gl -> ok
        end,
        [true = rpc:call(A, net_kernel, connect_node, [B])
         || A <- Nodes, B <- Nodes, A < B],
        ok = wait_until(fun() ->
                                lists:all(fun(Nd) ->
                                                  lists:sort([Nd | rpc:call(Nd, erlang, nodes, [])])
                                                      == lists:sort(Nodes)
                                          end, Nodes)
                        end, 20000),
        [ok = rpc:call(Nd, global, sync, []) || Nd <- Nodes],
        case Kind of
            dr -> ok = wait_views(Nodes, list_to_tuple(lists:sort(Nodes)), 20000);
            gl -> ok
        end,
        Cl
    catch Cl2:R:St ->
            stop_cluster(Cl),
            erlang:raise(Cl2, R, St)
    end.

start_node(C, Tag) ->
    Name = list_to_atom(maps:get(uniq, C) ++ "_" ++ Tag),
    Args = ["-setcookie", atom_to_list(erlang:get_cookie()),
            "-kernel", "net_ticktime", integer_to_list(maps:get(ticktime, C)),
            "-pa", maps:get(bench_ebin, C)]
        ++ case maps:get(dr_ebin, C) of "" -> []; D -> ["-pa", D] end,
    {ok, Peer, Node} = peer:start(#{name => Name, host => "127.0.0.1",
                                    longnames => true, args => Args,
                                    wait_boot => 60000}),
    OsPid = rpc:call(Node, os, getpid, []),
    ok = file:write_file(maps:get(pidfile, C),
                         [OsPid, " ", atom_to_list(Node), "\n"], [append]),
    ok = rpc:call(Node, bench_erl, node_init, []),
    #{peer => Peer, node => Node, ospid => OsPid}.

stop_cluster(Cl) ->
    [os_kill("-KILL", maps:get(ospid, X)) || X <- Cl],
    [catch peer:stop(maps:get(peer, X)) || X <- Cl],
    ok.

cl_nodes(Cl) -> [maps:get(node, X) || X <- Cl].

get_c() -> get(bench_c).

wait_views(Nodes, Tuple, Timeout) ->
    wait_until(fun() -> lists:all(fun(Nd) -> rpc:call(Nd, bench_erl, view, []) == Tuple
                                  end, Nodes)
               end, Timeout).

wait_until(F, Timeout) when Timeout =< 0 ->
    case F() of true -> ok; false -> timeout end;
wait_until(F, Timeout) ->
    case F() of
        true -> ok;
        false -> timer:sleep(20), wait_until(F, Timeout - 20)
    end.

%% Register [{Node, Names}] concurrently; returns {Ok, WallSeconds, FirstError}.
register_from(Kind, Parts) ->
    T0 = now_us(),
    Reqs = [erpc:send_request(Nd, bench_erl, reg_run, [Kind, Names])
            || {Nd, Names} <- Parts],
    Rs = [erpc:receive_response(R, infinity) || R <- Reqs],
    T1 = lists:max([T || {_, _, T} <- Rs]),
    Errs = [E || {_, E, _} <- Rs, E /= none],
    {lists:sum([O || {O, _, _} <- Rs]), (T1 - T0) / 1.0e6,
     case Errs of [] -> none; [E | _] -> E end}.

scenario(Sys, What, F) ->
    %% BE_ONLY=word (development): run only the scenarios whose name has it
    case env("BE_ONLY") of
        "" -> scenario1(Sys, What, F);
        Only ->
            case string:find(What, Only) of
                nomatch -> progress("~s: ~s left out (BE_ONLY)", [Sys, What]);
                _ -> scenario1(Sys, What, F)
            end
    end.

scenario1(Sys, What, F) ->
    progress("~s: ~s", [Sys, What]),
    T0 = now_us(),
    try F()
    catch Cl:R:St ->
            err("~s ~s failed: ~p:~p~n~p", [Sys, What, Cl, R, St]),
            meta(skip, Sys, fmt("~s: failed: ~0p", [What, {Cl, R}]))
    end,
    progress("~s: ~s took ~.1f s", [Sys, What, (now_us() - T0) / 1.0e6]).

%%% ===================================================================
%%% Node side
%%% ===================================================================

node_init() ->
    Self = self(),
    spawn(fun() ->
                  register(bench_keeper, self()),
                  ets:new(bench_workers, [named_table, public, set,
                                          {write_concurrency, true}]),
                  persistent_term:put({bench_erl, ctrs},
                                      counters:new(length(?CTRS), [write_concurrency])),
                  Self ! {bench_keeper, ready},
                  receive stop -> ok end
          end),
    receive {bench_keeper, ready} -> ok after 10000 -> timeout end.

count(Key) ->
    catch counters:add(persistent_term:get({bench_erl, ctrs}), idx(Key, ?CTRS, 1), 1).

idx(K, [K | _], I) -> I;
idx(K, [_ | T], I) -> idx(K, T, I + 1).

counters() ->
    Ref = persistent_term:get({bench_erl, ctrs}),
    [{K, counters:get(Ref, idx(K, ?CTRS, 1))} || K <- ?CTRS].

%% How a restart after {distreg,shouldrestart} ended (run on the old node).
count_restart(Name, Old, StaleHere, {ok, Pid}) when is_pid(Pid) ->
    count(case Pid of
              Old when StaleHere -> restart_stale_here;
              Old -> restart_stale_owner;
              _ ->
                  case rpc:call(node(Pid), erlang, is_process_alive, [Pid]) of
                      true ->
                          case node(Pid) == distreg:node_for_name(Name) of
                              true -> restart_ok;
                              false -> restart_elsewhere
                          end;
                      _ -> restart_dead
                  end
          end);
count_restart(_Name, _Old, _StaleHere, _Other) ->
    count(restart_err).

reg_run(Kind, Names) ->
    F = reg_fun(Kind),
    {Ok, Err} = lists:foldl(fun(Nm, {O, E}) ->
                                    case F(Nm) of
                                        ok -> {O + 1, E};
                                        X when E == none -> {O, X};
                                        _ -> {O, E}
                                    end
                            end, {0, none}, Names),
    {Ok, Err, now_us()}.

reg_fun(dr) ->
    fun(Nm) ->
            case distreg:start(Nm, {bench_erl_worker, start, [Nm]}) of
                {ok, P} when is_pid(P) -> ok;
                X -> X
            end
    end;
reg_fun(gl) ->
    fun(Nm) ->
            {ok, P} = bench_erl_worker:start(Nm),
            case global:register_name(Nm, P) of
                yes -> ok;
                no -> exit(P, kill), {global_no, Nm}
            end
    end.

%% The non-owner path to a global distreg name.
dr_lookup(Nm) ->
    case distreg:get_g_pid(Nm) of
        undefined ->
            case distreg:node_for_name(Nm) of
                Me when Me == node() -> undefined;
                undefined -> undefined;
                Owner -> rpc:call(Owner, distreg, get_g_pid, [Nm])
            end;
        P -> P
    end.

op_fun(dr_lookup) -> fun(Nm) -> is_pid(dr_lookup(Nm)) end;
op_fun(dr_nfn) ->
    Me = node(),
    fun(Nm) -> case distreg:node_for_name(Nm) of
                   Me -> false;
                   O -> is_atom(O) andalso O /= undefined
               end
    end;
op_fun(dr_call) -> fun(Nm) -> distreg:call(Nm, {ping, Nm}) == {ping, Nm} end;
op_fun(gl_lookup) -> fun(Nm) -> is_pid(global:whereis_name(Nm)) end;
op_fun(gl_call) ->
    fun(Nm) -> (catch gen_server:call({global, Nm}, {ping, Nm})) == {ping, Nm} end.

%% Ops operations over Names by Par concurrent processes; per-op latency by
%% erlang:monotonic_time.  Returns {P50us, P99us, OpsPerS, Wrong, Count}.
measure(Kind, Names, Ops, Par) ->
    F = op_fun(Kind),
    NT = list_to_tuple(Names),
    L = tuple_size(NT),
    Per = Ops div Par,
    Self = self(),
    T0 = erlang:monotonic_time(),
    Pids = [spawn_link(fun() ->
                               Self ! {lats, self(),
                                       op_loop(F, NT, L, (I * 7919) rem L, Per, [], 0)}
                       end) || I <- lists:seq(0, Par - 1)],
    Res = [receive {lats, P, R} -> R end || P <- Pids],
    T1 = erlang:monotonic_time(),
    Lats = lists:sort(lists:append([Ls || {Ls, _} <- Res])),
    Cnt = length(Lats),
    {pct(Lats, Cnt, 0.50), pct(Lats, Cnt, 0.99),
     Cnt / (erlang:convert_time_unit(T1 - T0, native, microsecond) / 1.0e6),
     lists:sum([B || {_, B} <- Res]), Cnt}.

op_loop(_F, _NT, _L, _I, 0, Acc, Bad) -> {Acc, Bad};
op_loop(F, NT, L, I, K, Acc, Bad) ->
    Nm = element(I + 1, NT),
    A = erlang:monotonic_time(),
    Ok = F(Nm),
    B = erlang:monotonic_time(),
    op_loop(F, NT, L, (I + 1) rem L, K - 1, [B - A | Acc],
            case Ok of true -> Bad; _ -> Bad + 1 end).

pct(Sorted, Cnt, Q) ->
    X = lists:nth(max(1, min(Cnt, ceil(Q * Cnt))), Sorted),
    erlang:convert_time_unit(X, native, nanosecond) / 1000.

%% Poller on a watcher node: which of the {Name, Pid} are still returned here?
poll_gone(Ctl, Ref, Kind, Items, Victim) ->
    Present = still_present(Kind, Items, Victim),
    Ctl ! {Ref, ready, node(), length(Present)},
    Deadline = erlang:monotonic_time(millisecond) + 600000,
    poll_loop(Ctl, Ref, Kind, Present, Victim, Deadline).

poll_loop(Ctl, Ref, _Kind, [], _Victim, _Deadline) ->
    Ctl ! {Ref, gone, node(), now_us()};
poll_loop(Ctl, Ref, Kind, Items, Victim, Deadline) ->
    case erlang:monotonic_time(millisecond) > Deadline of
        true -> exit(normal);
        false -> ok
    end,
    timer:sleep(1),
    poll_loop(Ctl, Ref, Kind, still_present(Kind, Items, Victim), Victim, Deadline).

%% global: the local replica still gives the pid.
%% distreg (the path a non-owner takes): the local table gives the pid (or a
%% pid on the dead node), or node_for_name gives the dead node, or the node
%% it gives has the pid (or a pid on the dead node) in its table; the
%% questions to a live owner are batched, one rpc per owner node.
still_present(gl, Items, _Victim) ->
    [It || {Nm, Pid} = It <- Items, global:whereis_name(Nm) == Pid];
still_present(dr, Items, Victim) ->
    Me = node(),
    Cls = [{It, case distreg:get_g_pid(Nm) of
                    P when is_pid(P) -> P == Pid orelse node(P) == Victim;
                    _ ->
                        case distreg:node_for_name(Nm) of
                            Victim -> true;
                            Me -> false;
                            undefined -> false;
                            Other -> {ask, Other}
                        end
                end} || {Nm, Pid} = It <- Items],
    Asks = lists:usort([O || {_, {ask, O}} <- Cls]),
    Answers = maps:from_list(
                lists:append(
                  [begin
                       Its = [It || {It, {ask, O2}} <- Cls, O2 == O],
                       case rpc:call(O, bench_erl, g_pids, [[Nm || {Nm, _} <- Its]], 2000) of
                           Ps when is_list(Ps) ->
                               [{It, is_pid(P2) andalso (P2 == Pid orelse node(P2) == Victim)}
                                || {{_, Pid} = It, P2} <- lists:zip(Its, Ps)];
                           _ -> [{It, false} || It <- Its]
                       end
                   end || O <- Asks])),
    [It || {It, V} <- Cls,
           case V of
               {ask, _} -> maps:get(It, Answers);
               B -> B
           end].

g_pids(Names) ->
    [distreg:get_g_pid(Nm) || Nm <- Names].

%% Names this node should serve (for served_count/0).
set_expected(Names) ->
    persistent_term:put({bench_erl, expected}, Names),
    ok.

served_count() ->
    Me = node(),
    length([1 || Nm <- persistent_term:get({bench_erl, expected}, []),
                 case distreg:get_g_pid(Nm) of
                     P when is_pid(P), node(P) == Me -> is_process_alive(P);
                     _ -> false
                 end]).

owners(Names, Tuple) ->
    [distreg:node_for_hash(erlang:phash2(Nm), Tuple) || Nm <- Names].

owners_view(Names) ->
    [distreg:node_for_name(Nm) || Nm <- Names].

view() ->
    case catch ets:lookup(distreg_pids, nodes) of
        [{nodes, T}] -> T;
        _ -> undefined
    end.

live_workers() ->
    [{Nm, P} || {P, Nm} <- ets:tab2list(bench_workers), is_process_alive(P)].

whereis_check(Names) ->
    fmt("~p of ~p", [length([1 || Nm <- Names, is_pid(distreg:whereis(Nm))]),
                     length(Names)]).

connect_all(Nodes) ->
    [true = net_kernel:connect_node(Nd) || Nd <- Nodes],
    ok.

%%% ===================================================================
%%% Helpers
%%% ===================================================================


%% register: N names from the first host, then N other names from all three
%% at once; the names of each round.
register_both(Sys, Kind, How, [H1 | _] = Nodes, N) ->
    NamesA = names("a", N),
    {OkA, WallA, ErrA} = register_from(Kind, [{H1, NamesA}]),
    check_reg(Sys, How ++ " from 1 host", OkA, N, ErrA),
    out(Sys, How ++ " from 1 host", "register", "names_per_s", OkA / WallA, "names/s"),
    NamesB = names("b", N),
    {OkB, WallB, ErrB} = register_from(Kind, lists:zip(Nodes, split(NamesB, 3))),
    check_reg(Sys, How ++ " from 3 hosts", OkB, N, ErrB),
    out(Sys, How ++ " from 3 hosts", "register", "names_per_s", OkB / WallB, "names/s"),
    %% and with 64 callers at once on each host (distreg's best has 256
    %% starts in flight: the same chance for Erlang)
    NamesC = names("c", N),
    Parts = lists:append([[{Nd, Chunk} || Chunk <- split(Ns, ?CALLERS)]
                          || {Nd, Ns} <- lists:zip(Nodes, split(NamesC, 3))]),
    HowC = How ++ " 64 callers per host from 3 hosts",
    {OkC, WallC, ErrC} = register_from(Kind, Parts),
    check_reg(Sys, HowC, OkC, N, ErrC),
    out(Sys, HowC, "register", "names_per_s", OkC / WallC, "names/s"),
    {NamesA, NamesB}.

names(Prefix, N) ->
    [list_to_binary([Prefix, $-, integer_to_list(I)]) || I <- lists:seq(1, N)].

split(L, K) ->
    Len = length(L),
    split(L, K, Len, []).
split(L, 1, _Len, Acc) -> lists:reverse([L | Acc]);
split(L, K, Len, Acc) ->
    Take = Len div K,
    {A, B} = lists:split(Take, L),
    split(B, K - 1, Len - Take, [A | Acc]).

median(Sorted) ->
    lists:nth((length(Sorted) + 1) div 2, Sorted).

now_us() -> os:system_time(microsecond).

env(K) ->
    case os:getenv(K) of
        false -> "";
        V -> V
    end.

fmt(F, A) -> lists:flatten(io_lib:format(F, A)).

clean(S) ->
    [case Ch of $, -> $;; $\n -> $\s; $\r -> $\s; _ -> Ch end
     || Ch <- lists:flatten(S)].

out(Sys, Cfg, Scen, Metric, Value, Unit) ->
    V = if is_integer(Value) -> integer_to_list(Value);
           true -> float_to_list(float(Value), [{decimals, 1}])
        end,
    io:put_chars(standard_io, [clean(Sys), $,, clean(Cfg), $,, Scen, $,, Metric, $,,
                               V, $,, Unit, $\n]).

meta(Kind, Sys, Text) ->
    T = clean(Text),
    T2 = case length(T) > 900 of true -> lists:sublist(T, 900) ++ "..."; false -> T end,
    io:put_chars(standard_io, ["#", atom_to_list(Kind), $,, Sys, $,, T2, $\n]).

progress(F, A) ->
    io:format(standard_error, "[bench_erl] " ++ F ++ "~n", A).

err(F, A) ->
    io:format(standard_error, "[bench_erl] ERROR " ++ F ++ "~n", A).
