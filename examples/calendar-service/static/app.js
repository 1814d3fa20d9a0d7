// The calendar page: FullCalendar's month / week / day views over
// GET /calendar/feed, and a modal that creates, edits and deletes items
// through /api/items. Query parameters of the page: ?date=2025-10-01
// (initial date), ?view=timeGridWeek, ?firstDay=0.
'use strict';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
let me = null;        // GET /api/me
let calendar = null;  // the FullCalendar instance
let editing = null;   // the FullCalendar event in the modal, or null when creating

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) {
    const text = await response.text();
    let message = text;
    try { message = JSON.parse(text).error || text; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${message}`);
  }
  return response.status === 204 ? null : response.json();
}

function fillSelect(select, values, label = (v) => v, keepFirst = false) {
  if (!keepFirst) select.replaceChildren();
  for (const v of values) {
    const option = document.createElement('option');
    option.value = typeof v === 'object' ? v.id : v;
    option.textContent = label(v);
    select.append(option);
  }
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

// Dates: FullCalendar and the API use an exclusive end; the modal shows the
// last day, as people think of it.
function addDays(iso, days) {
  const d = new Date(iso + 'T00:00:00Z');
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

// A Date's calendar day in the browser's zone (toISOString would give UTC's).
function localDay(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function openModal(event, day) {
  editing = event;
  $('item-error').hidden = true;
  $('item-heading').textContent = event ? 'Edit item' : 'New item';
  $('item-delete').hidden = !event;
  const props = event ? event.extendedProps : {};
  $('item-title').value = event ? event.title : '';
  $('item-calendar').value = event ? props.calendarId : me.calendars[0].id;
  $('item-work-type').value = props.workType || me.work_types[0];
  $('item-status').value = props.status || me.statuses[0];
  const start = event ? event.startStr : day;
  $('item-start').value = start;
  $('item-end').value = event ? addDays(event.endStr || addDays(start, 1), -1) : day;
  $('item-dialog').showModal();
}

function formItem() {
  const last = $('item-end').value;
  return {
    calendar_id: Number($('item-calendar').value),
    title: $('item-title').value,
    work_type: $('item-work-type').value,
    status: $('item-status').value,
    start: $('item-start').value,
    end: last ? addDays(last, 1) : '',
  };
}

async function saveModal(ev) {
  ev.preventDefault();
  try {
    if (editing) {
      await api('PUT', `/api/items/${editing.id}`, formItem());
    } else {
      await api('POST', '/api/items', formItem());
    }
    $('item-dialog').close();
    calendar.refetchEvents();
  } catch (e) {
    $('item-error').textContent = e.message;
    $('item-error').hidden = false;
  }
}

async function deleteFromModal() {
  try {
    await api('DELETE', `/api/items/${editing.id}`);
    // As in the seed: the modal closes and the item disappears at once;
    // whether it stays gone is up to the cache, after a reload.
    editing.remove();
    $('item-dialog').close();
  } catch (e) {
    $('item-error').textContent = e.message;
    $('item-error').hidden = false;
  }
}

// A drag or resize in the calendar is an edit that moves the item's dates.
async function moveEvent(info) {
  const p = info.event.extendedProps;
  try {
    await api('PUT', `/api/items/${info.event.id}`, {
      calendar_id: p.calendarId, title: info.event.title, work_type: p.workType, status: p.status,
      start: info.event.startStr, end: info.event.endStr || addDays(info.event.startStr, 1),
    });
  } catch (e) {
    info.revert();
    showError(e.message);
  }
}

async function refreshCacheInfo() {
  try {
    const m = await api('GET', '/api/cache');
    $('cache-info').textContent =
      `cache: ${m.strategy} on ${me.backend} · ${m.hits} hits, ${m.misses} misses, ${m.invalidations} invalidations`;
  } catch (_) { /* informational only */ }
}

async function main() {
  me = await api('GET', '/api/me');
  fillSelect($('user'), me.users);
  $('user').value = me.user;
  $('user').addEventListener('change', () => {
    document.cookie = `user=${encodeURIComponent($('user').value)}; path=/; SameSite=Lax`;
    location.reload();
  });
  fillSelect($('filter-work-type'), me.work_types, undefined, true);
  fillSelect($('filter-status'), me.statuses, undefined, true);
  fillSelect($('item-calendar'), me.calendars, (c) => c.name);
  fillSelect($('item-work-type'), me.work_types);
  fillSelect($('item-status'), me.statuses);

  calendar = new FullCalendar.Calendar($('calendar'), {
    initialView: params.get('view') || 'dayGridMonth',
    initialDate: params.get('date') || undefined,
    firstDay: Number(params.get('firstDay') ?? 1),
    headerToolbar: { left: 'prev,next today', center: 'title', right: 'dayGridMonth,timeGridWeek,timeGridDay' },
    height: 'auto',
    editable: true,
    events: {
      url: '/calendar/feed',
      extraParams: () => ({ work_type: $('filter-work-type').value, status: $('filter-status').value }),
      failure: (e) => showError(`feed: ${e.message}`),
    },
    // The browser test waits for data-feed="ready" after a reload.
    loading: (busy) => {
      document.documentElement.dataset.feed = busy ? 'loading' : 'ready';
      if (!busy) refreshCacheInfo();
    },
    eventDidMount: (info) => {
      info.el.dataset.itemId = info.event.id;
      info.el.title = `${info.event.title} · ${info.event.extendedProps.calendar} · ${info.event.extendedProps.status}`;
    },
    eventClick: async (info) => {
      info.jsEvent.preventDefault();
      try {
        await api('GET', `/api/items/${info.event.id}`); // 404 if it was deleted meanwhile
        openModal(info.event);
      } catch (e) {
        showError(`item ${info.event.id}: ${e.message}`);
      }
    },
    dateClick: (info) => openModal(null, info.dateStr.slice(0, 10)),
    eventDrop: moveEvent,
    eventResize: moveEvent,
  });
  calendar.render();

  for (const id of ['filter-work-type', 'filter-status']) {
    $(id).addEventListener('change', () => calendar.refetchEvents());
  }
  $('new-item').addEventListener('click', () => openModal(null, localDay(calendar.getDate())));
  $('item-form').addEventListener('submit', saveModal);
  $('item-delete').addEventListener('click', deleteFromModal);
  $('item-cancel').addEventListener('click', () => $('item-dialog').close());
}

main().catch((e) => showError(e.message));
