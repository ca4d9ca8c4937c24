%% A named worker of the Erlang cluster benchmark (bench/systems/erlang).
%% A gen_server that answers every call with the message it was sent.
%%
%% distreg tells a worker whose name now hashes to another node
%% {distreg,shouldrestart}; the worker is then meant to "restart itself on
%% another node" (distreg's README).  We do it the way distreg's own test
%% (distreg.erl, test_proc/2) does: stop, and from a fresh process on the old
%% node sleep 100 ms and call distreg:start(Name, StartFun) again, which
%% routes the start to the node the name now hashes to.
%% {distreg,dienow} (a duplicate on the wrong node): stop at once.
-module(bench_erl_worker).
-behaviour(gen_server).
-export([start/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
         code_change/3]).

start(Name) ->
    gen_server:start(?MODULE, Name, []).

init(Name) ->
    catch ets:insert(bench_workers, {self(), Name}),
    {ok, Name}.

handle_call(Msg, _From, Name) ->
    {reply, Msg, Name}.

handle_cast(_Msg, Name) ->
    {noreply, Name}.

handle_info({distreg, shouldrestart}, Name) ->
    bench_erl:count(shouldrestart),
    Old = self(),
    spawn(fun() ->
                  timer:sleep(100),
                  %% (for the report only: is the old entry still in the
                  %% table of this node?)
                  StaleHere = (catch distreg:get_g_pid(Name)) == Old,
                  R = (catch distreg:start(Name, {?MODULE, start, [Name]})),
                  bench_erl:count_restart(Name, Old, StaleHere, R)
          end),
    {stop, normal, Name};
handle_info({distreg, dienow}, Name) ->
    bench_erl:count(dienow),
    {stop, normal, Name};
handle_info(_Other, Name) ->
    {noreply, Name}.

terminate(_Reason, _Name) ->
    catch ets:delete(bench_workers, self()),
    ok.

code_change(_Old, Name, _Extra) ->
    {ok, Name}.
