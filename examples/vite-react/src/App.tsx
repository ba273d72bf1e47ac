import { useState } from 'react'

export default function App() {
  const [booked, setBooked] = useState(0)
  return (
    <main className="mx-auto max-w-xl p-8 font-sans">
      <h1 className="text-3xl font-bold text-rose-600">Salon booking</h1>
      <p className="mt-2 text-gray-600">Pick a time and we will see you soon.</p>
      <button className="mt-4 rounded bg-rose-600 px-4 py-2 text-white" onClick={() => setBooked(booked + 1)}>
        Book ({booked})
      </button>
    </main>
  )
}
